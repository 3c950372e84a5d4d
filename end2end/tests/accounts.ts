// The accounts the end-to-end tests use, shared by the spec files.
export const owner = { name: 'Olive Owner', email: 'olive@example.com', password: 'olive password 1' };
export const mate = { name: 'Tess Mate', email: 'tess@example.com', password: 'tess password 1' };
