export declare const DEV_SECRETS: { readonly apiKey: string; readonly jwtSecret: string };
export declare function mintDevToken(userId: string, ttlSeconds?: number): Promise<string>;
