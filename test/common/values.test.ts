import t from 'tap';
import { parseCidrList, parseHostPort, parsePortList } from '../../src/common/values.js';

t.test('port lists accept comma-separated ports and reject anything else with what is allowed', async (t) => {
  t.same(parsePortList('80, 443,8080,80'), { ok: true, value: [80, 443, 8080] });
  t.same(parsePortList(''), { ok: true, value: [] });
  for (const bad of ['0', '65536', 'http', '80;443', '-1', '1.5']) {
    const result = parsePortList(bad);
    t.equal(result.ok, false, `"${bad}" is rejected`);
    if (!result.ok) t.match(result.allowed, /1 to 65535/);
  }
});

t.test('CIDR lists accept IPv4 and IPv6 and reject bad prefixes', async (t) => {
  t.same(parseCidrList('198.18.0.0/15,fd00::/8,198.19.0.1'), {
    ok: true,
    value: [
      { address: '198.18.0.0', prefix: 15, family: 4 },
      { address: 'fd00::', prefix: 8, family: 6 },
      { address: '198.19.0.1', prefix: 32, family: 4 },
    ],
  });
  for (const bad of ['198.18.0.0/33', 'fd00::/129', 'example.com/8', '198.18.0.0/15/1', '198.18.0.0/x']) {
    t.equal(parseCidrList(bad).ok, false, `"${bad}" is rejected`);
  }
});

t.test('host:port accepts names, IPv4 and bracketed IPv6', async (t) => {
  t.same(parseHostPort('127.0.0.1:15001'), { ok: true, value: { host: '127.0.0.1', port: 15001 } });
  t.same(parseHostPort('[::1]:80'), { ok: true, value: { host: '::1', port: 80 } });
  t.same(parseHostPort('web.demo:8080'), { ok: true, value: { host: 'web.demo', port: 8080 } });
  for (const bad of ['127.0.0.1', ':80', '::1:80', '[web]:80', 'host:99999']) {
    t.equal(parseHostPort(bad).ok, false, `"${bad}" is rejected`);
  }
});
