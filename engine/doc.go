// Package engine holds Surge's business rules: catalog and storefront pages
// (千店千面), flash sales (秒杀), group buying (拼团), checkout, the
// reservation lifecycle and its sweeper, idempotency, the risk hook and the
// asynchronous order writer. It knows nothing of HTTP; its errors map
// one-to-one onto API.md's codes (see api.go).
//
// One file per concern:
//
//	api.go            the contract with the gateway: request and result types, sentinel errors
//	engine.go         Engine, Open, Close, Ready; options.go its Options and defaults
//	catalog.go        the catalog document and its snapshot; demo.go the demo catalog
//	storefront.go     store and guide pages (built once per store, a guide is an overlay)
//	flash.go          flash sales: creation, the sale's admission gate, ReserveFlash
//	buckets.go        stock buckets: a sale split over pools on several hash tags; transfers, rebalancing
//	lottery.go        a sale's lottery window: entrants held, drawn by HMAC(seed, user), served in order
//	registration.go   registration (预约) before a sale; draw.go the draw (抽签) among registrants
//	group.go          group deals and teams
//	salectl.go        pause, resume and end of sales and deals (kept in the sale's record); their admin views;
//	                  names.go the titles and store names they show
//	checkout.go       a cart, all or nothing
//	resrecord.go      the typed, versioned record kept with every reservation (resrecord_legacy.go:
//	                  reading the older encodings; once_legacy.go likewise for idempotency records)
//	reservations.go   a reservation's view, Pay, Cancel, and what a release gives back
//	payments.go       WeChat Pay: prepay, verified notifications, refunds, closing orders
//	orders.go         orders of paid reservations, their replay (law 4), the admin's
//	                  listing and attribution; orderwriter.go the asynchronous writer
//	                  into an orders.Store
//	once.go           idempotency of a creating call (law 5) over idempotency.go's kept answers;
//	                  idemlimit.go the bound on new keys per user and second
//	circuit.go        circuit breakers (sony/gobreaker) in front of the inventory store, the records (idempotency, payment and order records included) and a SQL order store
//	dataloss.go       the records' epoch: a data loss stops reservations until Recover
//	outbox.go         the writer of orders handed to the store's outbox (Redis: one stream per store)
//	risk.go           the risk hook's call and the caller's checks; riskhooks.go the built-in hook,
//	                  risklinks.go its linkage signals (accounts per device, devices per address, graded, farm_shape; logins counted)
//	                  riskpage.go the page-view token's signals, riskscore.go the score over
//	                  the signals; accounts.go accounts' first sessions (account age);
//	                  touchmap.go the bounded lock-free map their per-attempt lookups use
//	sync.go           what other nodes (or an earlier process) recorded: catalog, sales, deals
//	sweeper.go        expiry, team deadlines, draining ended sales, retention; idle.go what leaves
//	                  memory after a crowd (full risk buckets, shrunken maps)
//	feed.go           the POS / ERP stock feed (law 7); stats.go the admin counters
//	reconcile.go      pool counters vs reservation records vs orders (admin reconcile, surge check)
//	ids.go, errors.go ids and pool names; inventory errors onto the engine's sentinels
//	log.go            slog, with the request id of the call's context
//
// Storage lives in sub-packages: engine/records (the records, over memory,
// Pebble and Redis) and engine/orders (the order store over the records),
// each with one conformance suite over its backends.
//
// A flash reservation goes gateway -> ReserveFlash (sale lookup, the
// sold-out, paused and not-active answers from memory, the admission gate,
// the caller's and the risk hook's checks; under an Idempotency-Key the
// reservation's id is derived from the key) -> inventory.Store.Reserve, and
// back, with no call up.
package engine
