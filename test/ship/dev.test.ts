import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { ROOT, startProgram } from './program';

// `npm run dev` as a newcomer runs it: it serves readiness, a request through its wake proxy
// wakes a demo VM and gets the guest's answer, and Ctrl-C leaves nothing behind: its
// temporary directory (kubeconfig with the token, routes) is gone and git status unchanged.

const gitStatus = () => execFileSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8' });

test('npm run dev: ready, a proxied request wakes web-shop, SIGINT removes its temporary files', async () => {
  const before = gitStatus();
  const p = startProgram({ PORT: '0', PROXY_PORT: '0', SIM_STEP_MS: '20', LOG_LEVEL: 'warn' }, ['npm', 'run', 'dev'], {
    detached: true,
  });
  let tmp: string | undefined;
  try {
    const out = () => p.lines.join('\n');
    while (!/removes (\S+)\.$/m.test(out())) {
      if (p.child.exitCode !== null) throw new Error(`dev exited: ${out()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    tmp = /removes (\S+)\.$/m.exec(out())![1];
    const functions = /functions:\s+(\S+)/.exec(out())![1];
    const proxy = /wake proxy:\s+(\S+)/.exec(out())![1];
    expect(fs.existsSync(`${tmp}/kubeconfig`)).toBe(true);
    expect(out()).toMatch(/web-shop\s+runStrategy=Halted\s+opted-in=true\s+idle-timeout=1m/);
    expect(out()).toContain(`curl -i ${proxy}/web-shop/`);
    expect(out()).toContain("-H 'ce-type: dev.knative.sources.ping'");

    const ready = await fetch(`${functions}/health/readiness`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready']);

    const res = await fetch(`${proxy}/web-shop/orders`);
    // The simulator runs the guest; it names its VM and the path it was asked for (the prefix stripped).
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^guest web-shop \(vmi [^)]*\) GET \/orders\n$/);
    // dev's own watch saw the VM wake.
    while (!/\[vm\] web-shop: .* -> Running \(ready\)/.test(out())) await new Promise((r) => setTimeout(r, 50));
  } finally {
    try {
      process.kill(-p.child.pid!, 'SIGINT');
    } catch {
      // already gone
    }
    await p.exited;
  }
  expect(tmp && fs.existsSync(tmp)).toBe(false);
  expect(gitStatus()).toBe(before);
}, 120_000);
