// A real OpenID Connect provider (the npm package oidc-provider) for svcdash's
// integration tests, configured entirely by environment variables:
//   OIDC_PORT                listen on 127.0.0.1:PORT (0 = any free port)
//   OIDC_ISSUER              default http://127.0.0.1:<actual port>
//   OIDC_CLIENTS             [{"client_id", "client_secret", "redirect_uris": [...]}, ...]
//   OIDC_ACCOUNTS            {"<account id>": {"name", "email", "groups": [...]}, ...}
//   OIDC_CLAIMS_IN_ID_TOKEN  1 = claims in the ID token too, not only from userinfo
//   OIDC_TTL_ACCESS, OIDC_TTL_ID, OIDC_TTL_REFRESH   lifetimes in seconds
//   OIDC_INTROSPECTION       0 = no token introspection endpoint (RFC 7662; on by default)
//   OIDC_INTROSPECTION_CLAIMS  1 = introspection answers carry the user's name and groups
//   OIDC_USERINFO            0 = no userinfo endpoint
//   OIDC_ID_TOKEN_ALGS       ID token signing algorithms to advertise, comma-separated
//   TEST_NODE_MODULES  the node_modules holding oidc-provider (./dev.sh test
//                            installs it into target/test-tools/node)
// Once listening it prints one line, `OIDC_PROVIDER_READY <issuer>`, on stdout.
// Signing in: pass login_hint=<account id> to skip the form, or fill in the form
// (any password). Consent is never asked.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// stdout carries only the ready line the test waits for; oidc-provider prints
// notices with console.info, so send those to stderr before it is loaded.
console.log = console.info = console.error;
// The packages live under target/, not beside this file, and ESM imports ignore
// NODE_PATH: resolve from the directory the test names.
const env = process.env;
const modules = env.TEST_NODE_MODULES;
const { default: Provider } = await import(modules
  ? pathToFileURL(createRequire(join(modules, 'noop.js')).resolve('oidc-provider')).href
  : 'oidc-provider');

const accounts = JSON.parse(env.OIDC_ACCOUNTS || '{}');
const clients = JSON.parse(env.OIDC_CLIENTS || '[]').map((client) => ({
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  // oidc-provider 9 accepts client_secret_post as well from a client registered
  // with client_secret_basic, and allows one registered method per client.
  token_endpoint_auth_method: 'client_secret_basic',
  ...client,
}));
const seconds = (name, fallback) => Number(env[name] || fallback);

const server = createServer();
await new Promise((resolve) => server.listen(Number(env.OIDC_PORT || 0), '127.0.0.1', resolve));
const issuer = env.OIDC_ISSUER || `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients,
  // A fresh key per run instead of the package's fixed development keys.
  jwks: { keys: [{ ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' }] },
  async findAccount(_ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    return { accountId: id, claims: () => ({ ...accounts[id], sub: id }) };
  },
  responseTypes: ['code'],
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  claims: { openid: ['sub'], profile: ['name'], email: ['email'], groups: ['groups'] },
  // By default claims come only from userinfo when an access token is issued,
  // which is what most real providers do; tests can ask for the other shape.
  conformIdTokenClaims: env.OIDC_CLAIMS_IN_ID_TOKEN !== '1',
  ttl: {
    AccessToken: seconds('OIDC_TTL_ACCESS', 600),
    IdToken: seconds('OIDC_TTL_ID', 600),
    RefreshToken: seconds('OIDC_TTL_REFRESH', 3600),
  },
  // Access tokens are opaque; introspection may describe their owner as well.
  extraTokenClaims: async (_ctx, token) => {
    const account = accounts[token.accountId];
    if (env.OIDC_INTROSPECTION_CLAIMS !== '1' || !account) return undefined;
    return { username: account.email, groups: account.groups };
  },
  ...(env.OIDC_ID_TOKEN_ALGS
    ? { enabledJWA: { idTokenSigningAlgValues: env.OIDC_ID_TOKEN_ALGS.split(',') } }
    : {}),
  // The package requires PKCE only for public clients; svcdash must always send it.
  pkce: { required: () => true },
  // oidc-provider drops offline_access from every request without
  // prompt=consent; hand out a refresh token whenever the client may use one.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // Never ask for consent: grant whatever the client asked for.
  async loadExistingGrant(ctx) {
    const { client, account, session } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    const grant = (grantId && await ctx.oidc.provider.Grant.find(grantId))
      || new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: account.accountId });
    grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
    grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
    await grant.save();
    return grant;
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    // Any authenticated client may introspect any token (the package's default
    // policy): telling whose token it is stays svcdash's job.
    introspection: { enabled: env.OIDC_INTROSPECTION !== '0' },
    userinfo: { enabled: env.OIDC_USERINFO !== '0' },
  },
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const loginPage = (uid, error) => `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to the test identity provider</title></head>
<body><main><h1>Sign in to the test identity provider</h1>
${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<p><label>User <input name="login" autocomplete="username" required autofocus></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password"></label></p>
<p><button type="submit">Sign in</button></p>
</form></main></body></html>`;

const readForm = async (req) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
};

// Our own login and consent steps; everything else is oidc-provider's.
async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  const finish = (result) => provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  if (details.prompt.name === 'consent') {
    // Only reached if loadExistingGrant left something out: grant it anyway.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    return finish({ consent: { grantId: await grant.save() } });
  }
  let login = details.params.login_hint;
  let error;
  if (req.method === 'POST' && action === 'login') {
    login = (await readForm(req)).get('login');
    error = `Unknown user “${login}”.`;
  }
  if (login && Object.hasOwn(accounts, login)) return finish({ login: { accountId: login } });
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(loginPage(uid, error));
}

const oidc = provider.callback();
server.on('request', (req, res) => {
  const match = /^\/interaction\/([^/?]+)(?:\/(login))?(?:\?|$)/.exec(req.url);
  if (!match) return oidc(req, res);
  interaction(req, res, match[1], match[2]).catch((err) => {
    // Typically an expired interaction or a missing cookie.
    console.error(err);
    res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`interaction failed: ${err.message}\n`);
  });
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
process.stdout.write(`OIDC_PROVIDER_READY ${issuer}\n`);
