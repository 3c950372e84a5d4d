import { test, expect } from '@playwright/test';
import { ownerSession } from './accounts';

// The published Smooch client, unchanged but for serviceUrl, against murmur.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const SmoochCore = require('smooch-core');

test('smooch-core 8 appUsers and messages work against murmur', async ({ request, baseURL }) => {
  const headers = await ownerSession(request, baseURL!);
  const app = await (await request.post('/api/apps/create', { form: { 'input[name]': 'Smooch compat' }, headers })).json();
  const key = await (
    await request.post('/api/apps/keys/create', {
      form: { 'input[app_id]': app.app.id, 'input[name]': 'smooch-core' },
      headers,
    })
  ).json();

  const smooch = new SmoochCore({ keyId: key.id, secret: key.secret, scope: 'app', serviceUrl: baseURL });

  const created = await smooch.appUsers.create({
    appId: app.app.id,
    appUser: { userId: 'steve', givenName: 'Steve', properties: { favoriteFood: 'prizza' } },
  });
  expect(created.appUser.userId).toBe('steve');
  expect(created.appUser.properties).toEqual({ favoriteFood: 'prizza' });

  const got = await smooch.appUsers.get({ appId: app.app.id, userId: 'steve' });
  expect(got.appUser._id).toBe(created.appUser._id);

  const updated = await smooch.appUsers.update({
    appId: app.app.id,
    userId: 'steve',
    appUser: { surname: 'Rogers', properties: { favoriteFood: 'pizza', level: 3 } },
  });
  expect(updated.appUser.surname).toBe('Rogers');
  expect(updated.appUser.properties).toEqual({ favoriteFood: 'pizza', level: 3 });

  const sent = await smooch.appUsers.sendMessage({
    appId: app.app.id,
    userId: 'steve',
    message: { role: 'appMaker', type: 'text', text: 'Hello Steve!', name: 'Olive' },
  });
  expect(sent.message.text).toBe('Hello Steve!');
  await smooch.appUsers.sendMessage({
    appId: app.app.id,
    userId: 'steve',
    message: { role: 'appUser', type: 'text', text: 'Hi!' },
  });
  const messages = await smooch.appUsers.getMessages({ appId: app.app.id, userId: 'steve' });
  expect(messages.messages.map((m: { text: string }) => m.text)).toEqual(['Hello Steve!', 'Hi!']);

  await smooch.appUsers.delete({ appId: app.app.id, userId: 'steve' });
  await expect(smooch.appUsers.get({ appId: app.app.id, userId: 'steve' })).rejects.toMatchObject({
    response: { status: 404 },
  });

  // A wrong secret is refused by murmur, seen through the client.
  const wrong = new SmoochCore({ keyId: key.id, secret: 'not the secret', scope: 'app', serviceUrl: baseURL });
  await expect(wrong.appUsers.get({ appId: app.app.id, userId: 'steve' })).rejects.toMatchObject({
    response: { status: 401 },
  });
});
