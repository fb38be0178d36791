// The development secrets `npm start` hands to the apps, and the dev token and client use.
// Every app refuses them with NODE_ENV=production; packages/config's DevSecrets must equal
// these (a test checks it).
export const DEV_SECRETS = {
  apiKey: 'sb_dev_0000000000000000000000000000',
  jwtSecret: 'switchboard-dev-jwt-secret-do-not-use-in-production',
};
