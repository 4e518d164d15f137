import { KubeConfig } from '@kubernetes/client-node';
test('client-node loads under jest', () => {
  expect(typeof new KubeConfig().loadFromString).toBe('function');
});
