// discover.js URL [NAME] - ask the NATS micro discovery subjects through
// nats.js's own services client (an implementation cmdhost did not write)
// and print {"ping": [...], "info": [...], "stats": [...]} as one JSON line.
"use strict";
const { connect } = require("nats");

async function collect(iter) {
  const out = [];
  for await (const s of await iter) out.push(s);
  return out;
}

(async () => {
  const nc = await connect({ servers: process.argv[2] });
  const name = process.argv[3] || "";
  const m = nc.services.client({ strategy: "timer", maxWait: 1000 });
  const out = {
    ping: await collect(m.ping(name)),
    info: await collect(m.info(name)),
    stats: await collect(m.stats(name)),
  };
  process.stdout.write(JSON.stringify(out) + "\n");
  await nc.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
