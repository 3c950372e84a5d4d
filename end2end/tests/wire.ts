import { Page } from '@playwright/test';

// What crosses the network for a page, as chromium counts it (CDP
// `encodedDataLength`: headers and body as sent, compressed), and whether a
// response came from the browser's cache instead.
export type Load = { url: string; bytes: number; fromCache: boolean };

// Starts recording `page`'s responses into the returned map (cleared by the
// caller between visits). `cacheDisabled`: every response from the network.
export async function recordLoads(page: Page, cacheDisabled = false): Promise<Map<string, Load>> {
  const loads = new Map<string, Load>();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  if (cacheDisabled) await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  cdp.on('Network.requestWillBeSent', (e) => loads.set(e.requestId, { url: e.request.url, bytes: 0, fromCache: false }));
  cdp.on('Network.requestServedFromCache', (e) => {
    const l = loads.get(e.requestId);
    if (l) l.fromCache = true;
  });
  cdp.on('Network.loadingFinished', (e) => {
    const l = loads.get(e.requestId);
    if (l) l.bytes = e.encodedDataLength;
  });
  return loads;
}
