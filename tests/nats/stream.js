// stream.js URL NAME SUBJECT [info] - add a file-backed JetStream stream
// NAME on SUBJECT (make bench's events scenario), or with "info" print
// {"messages": N} for it, through nats.js's JetStream manager.
"use strict";
const { connect } = require("nats");

(async () => {
  const nc = await connect({ servers: process.argv[2] });
  const jsm = await nc.jetstreamManager();
  const name = process.argv[3];
  if (process.argv[5] === "info") {
    const si = await jsm.streams.info(name);
    process.stdout.write(JSON.stringify({ messages: si.state.messages }) + "\n");
  } else {
    await jsm.streams.add({ name, subjects: [process.argv[4]] });
    process.stdout.write(JSON.stringify({ added: name }) + "\n");
  }
  await nc.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
