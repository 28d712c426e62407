// Package gateway is Surge's fasthttp server: routing, sessions, JSON,
// admission control, the inventory feed, admin and operations endpoints and
// metrics. It holds no business rule; it parses, authenticates, admits,
// calls the engine and answers with API.md's envelope and codes.
//
// Use:
//
//	srv, err := gateway.New(gateway.Options{
//		Engine:     eng,          // *engine.Engine
//		AdminToken: adminToken,   // "" disables /admin/v1 and /debug/pprof
//		FeedSecret: feedSecret,   // "" disables the feed
//		Login:      gateway.LoginOptions{Provider: gateway.ProviderDev},
//		Registry:   reg,          // nil: a new one with Go and process collectors
//	})
//	go srv.Serve(ln)              // returns nil after Shutdown
//	...
//	srv.Shutdown(ctx)             // stops accepting, drains requests in flight
//
// Every default is documented on Options. The request path is:
// route (router.go) -> in-flight bound of the route class (503/50300 when
// full, nothing waits) -> body limit (413/41300) -> session or admin token
// or feed signature -> strict JSON decoding (40000) -> for flash
// reservations the per-sale gate (40900 from memory when sold out, 429/42900
// above SaleAdmitFactor x remaining) -> Engine.Idempotent when the request
// has an Idempotency-Key -> the engine -> errors.go's one table from engine
// sentinel errors to API.md codes.
//
// The storefront routes write the engine's precomputed page bytes inside
// the envelope without encoding or allocating (see alloc_test.go).
package gateway
