// The signed-in key lives in this tab's sessionStorage only: never in a URL,
// a cookie or localStorage, and it is gone when the tab closes.
const SLOT = "tokgateway.key";

export function storedKey(): string | null {
  return sessionStorage.getItem(SLOT);
}

export function storeKey(key: string): void {
  sessionStorage.setItem(SLOT, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(SLOT);
}
