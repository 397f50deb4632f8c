// graphql-http's GraphQL-over-HTTP server audit against the URL given as the only
// argument; prints one JSON line per audit: {id, name, status, reason, httpStatus, body}.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}
for (const result of await auditServer({ url })) {
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    line.reason = result.reason;
    line.httpStatus = result.response?.status;
    line.body = await result.response?.text().catch(() => undefined);
  }
  console.log(JSON.stringify(line));
}
