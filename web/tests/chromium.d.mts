// Types for tests/chromium.mjs.
export declare const CHROMIUM_PATH: string;
export declare const OFFLINE_ARGS: readonly string[];
