import t from 'tap';
import { analyseShares, coefficientOfVariation, type EndpointTraffic } from '../../src/diagnose/shares.js';

const ep = (endpoint: string, requests: number, extra: Partial<EndpointTraffic> = {}): EndpointTraffic => ({ endpoint, pod: endpoint.split(':')[0], requests, ...extra });

t.test('an even split is balanced and names the range of shares', async (t) => {
  const a = analyseShares([ep('web-0:8080', 330), ep('web-1:8080', 340), ep('web-2:8080', 330)]);
  t.equal(a.verdict, 'balanced');
  t.match(a.summary, /^balanced: 3 endpoints each take 33%–34%/);
  t.ok(a.cv < 0.05, `cv ${a.cv}`);
});

t.test('one pod taking nearly everything is imbalanced and named with its share', async (t) => {
  const a = analyseShares([ep('web-0:8080', 920), ep('web-1:8080', 40), ep('web-2:8080', 40)]);
  t.equal(a.verdict, 'imbalanced');
  t.match(a.summary, 'pod web-0 takes 92% (fair share 33%)');
  t.ok(a.cv > 1, `cv ${a.cv}`);
});

t.test('new pods that receive nothing are called out as new', async (t) => {
  const a = analyseShares([ep('web-0:8080', 500), ep('web-1:8080', 500), ep('web-2:8080', 0, { isNew: true }), ep('web-3:8080', 0, { isNew: true })]);
  t.equal(a.verdict, 'imbalanced');
  t.match(a.summary, 'new pods receiving nothing: web-2, web-3');
});

t.test('an endpoint that is not ready and idle is not held against the split', async (t) => {
  const a = analyseShares([ep('web-0:8080', 500), ep('web-1:8080', 500), ep('web-2:8080', 0, { ready: false })]);
  t.equal(a.verdict, 'balanced');
  t.equal(a.endpoints.length, 2);
});

t.test('less traffic to a clearly slower endpoint is balanced for latency', async (t) => {
  const a = analyseShares([
    ep('web-0:8080', 480, { durationSumSeconds: 0.48, durationCount: 480 }),
    ep('web-1:8080', 490, { durationSumSeconds: 0.49, durationCount: 490 }),
    ep('web-2:8080', 30, { durationSumSeconds: 1.5, durationCount: 30 }),
  ]);
  t.equal(a.verdict, 'latency-weighted');
  t.match(a.summary, /pod web-2 is slower \(mean 50 ms vs 1\.0 ms\) and gets less \(3%\)/);
});

t.test('a hot endpoint that is not faster is still imbalanced', async (t) => {
  const a = analyseShares([
    ep('web-0:8080', 900, { durationSumSeconds: 9, durationCount: 900 }),
    ep('web-1:8080', 100, { durationSumSeconds: 1, durationCount: 100 }),
  ]);
  t.equal(a.verdict, 'imbalanced');
  t.match(a.summary, 'pod web-0 takes 90% (fair share 50%)');
});

t.test('no requests means nothing to judge', async (t) => {
  const a = analyseShares([ep('web-0:8080', 0), ep('web-1:8080', 0)]);
  t.equal(a.verdict, 'no-traffic');
});

t.test('coefficient of variation is population stddev over mean', async (t) => {
  t.equal(coefficientOfVariation([5, 5, 5]), 0);
  t.equal(coefficientOfVariation([0, 10]), 1);
  t.equal(coefficientOfVariation([]), 0);
});
