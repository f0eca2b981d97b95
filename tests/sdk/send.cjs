// Sends one of each Segment call through an official Node SDK, as a shop would.
//
// Usage: node send.cjs segment|rudder HOST WRITE_KEY PREFIX
//
// The SDKs come from tests/sdk/node (installed by tests/sdk/setup.sh). Every id starts with
// PREFIX, so the test can find what arrived. Each SDK runs with its own defaults (Basic auth,
// batching, retries; gzip on by default for RudderStack), then is flushed. One track call is sent
// twice with the same message id, as an SDK retry would, and must be stored once.
'use strict';

const path = require('path');

const [sdk, host, writeKey, prefix] = process.argv.slice(2);
const modules = path.join(__dirname, 'node', 'node_modules');
const user = `${prefix}-user`;
const anon = `${prefix}-anon`;
const errors = [];

function calls(client) {
  // Identify with traits in the body and in context.traits.
  client.identify({
    userId: user,
    traits: { email: `${prefix}@example.com`, plan: 'pro' },
    context: { traits: { firstName: 'Ada' }, ip: '203.0.113.7', locale: 'de-DE' },
  });
  // A visitor browses anonymously, then signs up: alias merges the visitor into the user.
  client.track({ anonymousId: anon, event: 'Product Viewed', properties: { sku: 'tea-1' } });
}

function laterCalls(client) {
  client.alias({ userId: user, previousId: anon });
  const order = {
    userId: user,
    event: 'Order Completed',
    properties: { order_id: `${prefix}-o1`, total: 12.5, currency: 'EUR' },
    messageId: `${prefix}-retried`,
  };
  client.track(order);
  // The same message again, as a retry after a lost answer would send it.
  client.track({ ...order, properties: { ...order.properties } });
  client.page({
    userId: user,
    category: 'Docs',
    name: 'Pricing',
    properties: { url: 'https://shop.example/pricing' },
  });
  client.screen({ userId: user, name: 'Home' });
  client.group({ userId: user, groupId: 'acme', traits: { name: 'Acme', employees: 12 } });
}

async function segment() {
  const { Analytics } = require(path.join(modules, '@segment/analytics-node'));
  const client = new Analytics({ writeKey, host, maxRetries: 2 });
  client.on('error', (err) => errors.push(String(err && (err.reason || err.code || err))));
  calls(client);
  // The visitor's view must be stored before the alias that merges it.
  await client.closeAndFlush({ timeout: 20000 });
  const second = new Analytics({ writeKey, host, maxRetries: 2 });
  second.on('error', (err) => errors.push(String(err && (err.reason || err.code || err))));
  laterCalls(second);
  await second.closeAndFlush({ timeout: 20000 });
}

async function rudder() {
  const Analytics = require(path.join(modules, '@rudderstack/rudder-sdk-node'));
  const client = new Analytics(writeKey, {
    dataPlaneUrl: host,
    retryCount: 2,
    logLevel: 'error',
    errorHandler: (err) => errors.push(String(err && (err.message || err))),
  });
  calls(client);
  await client.flush();
  laterCalls(client);
  await client.flush();
}

const run = { segment, rudder }[sdk];
if (!run) {
  console.error(`unknown sdk ${sdk}`);
  process.exit(2);
}
run().then(
  () => {
    if (errors.length > 0) {
      console.error(`the SDK reported errors: ${errors.join('; ')}`);
      process.exit(1);
    }
    console.log('sent');
    // RudderStack's client keeps a flush timer; everything was flushed, so do not wait for it.
    process.exit(0);
  },
  (err) => {
    console.error(`the SDK failed: ${err && err.message}`);
    process.exit(1);
  },
);
