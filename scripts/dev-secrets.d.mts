export declare const DEV_SECRETS: { readonly apiKey: string; readonly jwtSecret: string };
