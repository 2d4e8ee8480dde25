import { stringify } from 'yaml';

/**
 * A kubeconfig both clients accept for a plain-http server: client-node refuses http:// unless
 * insecure-skip-tls-verify is set, and kubectl never sends the token over http (the server needs none).
 */
export function kubeconfigYaml(url: string, contextName = 'bdr'): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: contextName, cluster: { server: url, 'insecure-skip-tls-verify': true } }],
    contexts: [{ name: contextName, context: { cluster: contextName, user: contextName, namespace: 'default' } }],
    'current-context': contextName,
    users: [{ name: contextName, user: { token: 'bdr-local' } }],
    preferences: {},
  });
}
