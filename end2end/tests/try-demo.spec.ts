import { test, expect } from '@playwright/test';
// (Named to run after foundation.spec.ts, which needs a fresh instance.)
import { hydrated, ownerPage, seedApp } from './accounts';

// A newcomer sees a whisper on screen within a minute: from a template to
// the demo page ("Try this whisper"), where the widget is installed as on a
// website and the test user gets the card; properties and events set on
// the demo page reach murmur through the widget.
test('from a template to a whisper on the demo page, within a minute', async ({ browser, request, baseURL }) => {
  const started = Date.now();
  const errors: string[] = [];
  const seeded = await seedApp(request, baseURL!, 'Demo shop', []);
  const page = await ownerPage(browser, errors);
  await page.goto(`/apps/${seeded.appId}/whispers`);
  await hydrated(page);
  await page.getByRole('link', { name: 'Welcome', exact: true }).click();
  await hydrated(page);
  await page.getByRole('button', { name: 'Save and activate' }).click();
  await expect(page).toHaveURL(/whispers\/[0-9a-f]{24}$/);
  await hydrated(page);

  const [demo] = await Promise.all([page.context().waitForEvent('page'), page.getByTestId('try-whisper').click()]);
  demo.on('pageerror', (e) => errors.push(e.message));
  await expect(demo).toHaveURL(/\/demo\/[0-9a-f]+\?user=demo-[0-9a-z]+&whisper=/);
  await expect(demo.getByTestId('demo-whisper')).toContainText('it fires when the user opens the app');
  await expect.poll(() => demo.frames().some((f) => f.url().includes('/widget/frame'))).toBe(true);
  const frame = demo.frames().find((f) => f.url().includes('/widget/frame'))!;
  await expect(frame.locator('.card .body')).toContainText('Hi there, welcome!');
  const elapsed = Date.now() - started;
  console.log(`whisper on screen ${elapsed} ms after the app was created`);
  expect(elapsed).toBeLessThan(60_000);

  // Properties and an event, through the widget, as the test user.
  const user = (await demo.getByTestId('demo-user').textContent())!;
  await demo.getByLabel('Property name').fill('plan');
  await demo.getByLabel('Property value').fill('pro');
  await demo.getByTestId('demo-save-props').click();
  await demo.getByTestId('demo-event').fill('viewed-pricing');
  await demo.getByTestId('demo-track').click();
  await expect(demo.locator('#demo-log li').first()).toHaveText('Tracked “viewed-pricing”');
  await expect
    .poll(async () => (await (await request.get(`/v1.1/appusers/${user}`, { headers: seeded.auth })).json()).appUser?.properties?.plan)
    .toBe('pro');
  // The demo logs "Tracked" when the widget sends the event, and the
  // profile lists events as they are when it loads: load it until the
  // event's write has landed (here within half a second; each load
  // hydrates the profile's debug WASM, so the wait allows several).
  const profile = page;
  await expect
    .poll(async () => {
      await profile.goto(`/apps/${seeded.appId}/users/${user}`);
      await hydrated(profile);
      return profile.getByRole('region', { name: 'Events' }).textContent();
    }, { timeout: 30_000 })
    .toContain('viewed-pricing');
  expect(errors).toEqual([]);
});
