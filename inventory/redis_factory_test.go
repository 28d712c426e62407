package inventory_test

// Placeholder until the redis backend lands; owned by the redis backend's
// author, who replaces it with a factory that starts a real redis-server.
