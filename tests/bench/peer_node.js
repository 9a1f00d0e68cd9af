// peer_node.js - the Node.js peer of the benchmark: a `net` server on a
// Unix socket that splits lines, JSON.parse()s each request and answers
// {"id":..,"status":200,"body":payload} with JSON.stringify (what cmdhost's
// echo answers).  One process, one event loop.  Usage: node peer_node.js SOCKET
'use strict';
const net = require('net');
const fs = require('fs');

const path = process.argv[2];
if (!path) {
	console.error('usage: node peer_node.js SOCKET');
	process.exit(2);
}
try { fs.unlinkSync(path); } catch (e) { /* none there */ }

const server = net.createServer((sock) => {
	let rest = '';
	sock.setEncoding('utf8');
	sock.on('data', (chunk) => {
		const data = rest + chunk;
		let start = 0, nl, out = '';
		while ((nl = data.indexOf('\n', start)) >= 0) {
			const line = data.slice(start, nl);
			start = nl + 1;
			let req;
			try {
				req = JSON.parse(line);
			} catch (e) {
				out += JSON.stringify({ id: null, status: 400,
				    error: { code: 'bad_request', message: String(e) } }) + '\n';
				continue;
			}
			const id = req.id === undefined ? null : req.id;
			if (req.command === 'host.ping')
				out += JSON.stringify({ id: id, status: 200, body: { pong: true } }) + '\n';
			else
				out += JSON.stringify({ id: id, status: 200,
				    body: req.payload === undefined ? {} : req.payload }) + '\n';
		}
		rest = data.slice(start);
		if (out.length > 0)
			sock.write(out);
	});
	sock.on('error', () => sock.destroy());
});
server.maxConnections = 100000;
server.listen(path);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
