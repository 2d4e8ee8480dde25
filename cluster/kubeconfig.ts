import { stringify } from 'yaml';

/**
 * The kubeconfig of the embedded server: its CA (so clients verify the serving certificate) and the bearer
 * token. kubectl sends a token only over TLS, which is why the server speaks HTTPS.
 */
export function kubeconfigYaml(url: string, auth: { token: string; ca: string }, contextName = 'bdr'): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: contextName, cluster: { server: url, 'certificate-authority-data': Buffer.from(auth.ca).toString('base64') } }],
    contexts: [{ name: contextName, context: { cluster: contextName, user: contextName, namespace: 'default' } }],
    'current-context': contextName,
    users: [{ name: contextName, user: { token: auth.token } }],
    preferences: {},
  });
}
