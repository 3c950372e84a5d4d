import { expect, APIRequestContext } from '@playwright/test';

// The accounts the end-to-end tests use, shared by the spec files.
export const owner = { name: 'Olive Owner', email: 'olive@example.com', password: 'olive password 1' };
export const mate = { name: 'Tess Mate', email: 'tess@example.com', password: 'tess password 1' };

// Signs the API request context in as the owner (setting murmur up first if
// this spec runs alone). Returns the same-origin headers server functions need.
export async function ownerSession(request: APIRequestContext, baseURL: string) {
  const headers = { Origin: baseURL, Accept: 'application/json' };
  const session = await (await request.post('/api/session', { headers })).json();
  const form = session.setup_needed
    ? { 'input[name]': owner.name, 'input[email]': owner.email, 'input[password]': owner.password }
    : { 'input[email]': owner.email, 'input[password]': owner.password };
  const r = await request.post(session.setup_needed ? '/api/setup' : '/api/login', { form, headers });
  expect(r.status()).toBe(200);
  return headers;
}
