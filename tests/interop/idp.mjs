// An OAuth 2.0 authorization server for the interop tests: oidc-provider (a certified OpenID
// Connect / OAuth 2.0 implementation) issuing JWT access tokens (ES256) for one resource,
// ringmux's MCP endpoint (RFC 8707 resource indicators), to clients that register themselves
// (RFC 7591) and use PKCE. The login and consent steps approve at once, as the test's user
// "sdk-user" (a test has no person to click).
//
// usage: node idp.mjs PORT RESOURCE   (prints "idp listening on ISSUER" once it listens)

import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const [port, resource] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const ACCOUNT = 'sdk-user';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signing = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  jwks: { keys: [signing] },
  // Its one key is ES256: registered clients' ID tokens too.
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  scopes: ['mcp'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope: 'mcp',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
});

// Login and consent, approved at once: the grant holds the resource's scope.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({ accountId: ACCOUNT, clientId: details.params.client_id });
  // What the client asked for, as scopes of the provider and of the resource.
  if (details.params.scope) grant.addOIDCScope(details.params.scope);
  grant.addResourceScope(resource, 'mcp');
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: ACCOUNT }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

const callback = provider.callback();
http
  .createServer((req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((e) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    } else {
      callback(req, res);
    }
  })
  .listen(Number(port), '127.0.0.1', () => console.log(`idp listening on ${issuer}`));
