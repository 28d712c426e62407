// Package gateway is Surge's fasthttp server: routing, sessions, JSON,
// admission control, the inventory feed, admin and operations endpoints and
// metrics. It holds no business rule; it parses, authenticates, admits,
// calls the engine and answers with API.md's envelope and codes.
package gateway
