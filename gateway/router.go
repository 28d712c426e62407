package gateway

import (
	"bytes"

	"github.com/surge-retail/surge/engine"
)

// routeID names one endpoint of API.md.
type routeID uint8

const (
	rUnknown routeID = iota
	rSession
	rStorePage
	rProductPage
	rSaleGet
	rSaleReserve
	rDealGet
	rTeamOpen
	rTeamGet
	rTeamJoin
	rCheckout
	rResGet
	rResPay
	rResCancel
	rResPrepay
	rPayNotify
	rOrderGet
	rMyOrders
	rFeed
	rAdminCatalog
	rAdminSales
	rAdminDeals
	rAdminSaleGet // salectl.go: sale controls and reconciliation
	rAdminSaleCtl
	rAdminDealGet
	rAdminDealCtl
	rAdminReconcile
	rAdminStats
	rAdminOrders
	rAdminAttrib
	rPprof
	rHealthz
	rReadyz
	rMetrics
	rH5Store
	rAdminPage // adminpage.go: the operator's live page
	rOpenAPI   // openapi.go
	// registration.go: registering for a sale (预约) and the admin's export
	rSaleRegister
	rAdminSaleRegs

	rAdminRecover // recover.go: resuming after a data loss
	routesLen
)

// Route classes, each with its own in-flight bound.
const (
	classNone     = iota // ops endpoints: not admitted through a semaphore
	classReads           // public and user reads
	classWrites          // reserving writes: flash reserve, team open and join, checkout
	classAdmin           // admin and feed
	classSessions        // logins (each may call the login provider)
	classPays            // pay, cancel, prepay and WeChat Pay's notifications: capacity of their own, never taken by reserves
	classesLen
)

// routeSpec describes a route.
type routeSpec struct {
	name   string // metric label and log field
	method string // "GET", "POST", "PUT"; "" = any (pprof)
	class  int
	hot    bool // logs sampled
}

var routes = [routesLen]routeSpec{
	rUnknown:      {"unknown", "", classNone, true},
	rSession:      {"session", "POST", classSessions, false},
	rStorePage:    {"store_page", "GET", classReads, true},
	rProductPage:  {"product_page", "GET", classReads, true},
	rSaleGet:      {"sale_get", "GET", classReads, true},
	rSaleReserve:  {"sale_reserve", "POST", classWrites, true},
	rDealGet:      {"deal_get", "GET", classReads, true},
	rTeamOpen:     {"team_open", "POST", classWrites, true},
	rTeamGet:      {"team_get", "GET", classReads, true},
	rTeamJoin:     {"team_join", "POST", classWrites, true},
	rCheckout:     {"checkout", "POST", classWrites, true},
	rResGet:       {"reservation_get", "GET", classReads, false},
	rResPay:       {"reservation_pay", "POST", classPays, false},
	rResCancel:    {"reservation_cancel", "POST", classPays, false},
	rResPrepay:    {"reservation_prepay", "POST", classPays, false},
	rPayNotify:    {"wechatpay_notify", "POST", classPays, false},
	rOrderGet:     {"order_get", "GET", classReads, false},
	rMyOrders:     {"my_orders", "GET", classReads, false},
	rFeed:         {"inventory_feed", "POST", classAdmin, false},
	rAdminCatalog: {"admin_catalog", "PUT", classAdmin, false},
	rAdminSales:   {"admin_flash_sales", "POST", classAdmin, false},
	rAdminDeals:   {"admin_group_buys", "POST", classAdmin, false},
	rAdminStats:   {"admin_stats", "GET", classAdmin, false},
	rAdminOrders:  {"admin_orders", "GET", classAdmin, false},
	rAdminAttrib:  {"admin_attribution", "GET", classAdmin, false},
	rPprof:        {"pprof", "", classAdmin, false},
	rHealthz:      {"healthz", "GET", classNone, false},
	rReadyz:       {"readyz", "GET", classNone, false},
	rMetrics:      {"metrics", "GET", classNone, false},
	rH5Store:      {"h5_store", "GET", classReads, true},
	rAdminPage:    {"admin_page", "GET", classAdmin, false},
	rOpenAPI:      {"openapi", "GET", classReads, false},

	// registration.go
	rSaleRegister: {"sale_register", "POST", classWrites, true}, rAdminSaleRegs: {"admin_flash_sale_registrations", "GET", classAdmin, false},

	// salectl.go
	rAdminSaleGet: {"admin_flash_sales_get", "GET", classAdmin, false}, rAdminSaleCtl: {"admin_flash_sale_control", "POST", classAdmin, false},
	rAdminDealGet: {"admin_group_buys_get", "GET", classAdmin, false}, rAdminDealCtl: {"admin_group_buy_control", "POST", classAdmin, false},
	rAdminReconcile: {"admin_reconcile", "GET", classAdmin, false},
	rAdminRecover:   {"admin_recover", "POST", classAdmin, false},
}

// segsMax bounds the path segments looked at; longer paths match nothing.
const segsMax = 8

// idLenMax bounds an id taken from a path, bytes: the longest id of any
// kind (a reservation id; keys are shorter).
const idLenMax = engine.IDLenMax

// match finds the route of a path. p1 and p2 are the path's ids (they
// alias path). methodOK is false when the path is known but the method is
// not its own. It does not allocate.
func match(method, path []byte) (r routeID, p1, p2 []byte, methodOK bool) {
	var segs [segsMax][]byte
	n := 0
	if len(path) == 0 || path[0] != '/' {
		return rUnknown, nil, nil, false
	}
	if bytes.HasPrefix(path, []byte("/debug/pprof/")) {
		return rPprof, nil, nil, true
	}
	if string(path) == "/admin/" || string(path) == "/admin" {
		return rAdminPage, nil, nil, string(method) == "GET" || string(method) == "HEAD"
	}
	rest := path[1:]
	for {
		if n == segsMax {
			return rUnknown, nil, nil, false
		}
		i := bytes.IndexByte(rest, '/')
		if i < 0 {
			segs[n] = rest
			n++
			break
		}
		segs[n] = rest[:i]
		n++
		rest = rest[i+1:]
	}
	for i := 0; i < n; i++ {
		if len(segs[i]) == 0 || len(segs[i]) > idLenMax {
			return rUnknown, nil, nil, false
		}
	}
	r = rUnknown
	switch {
	case n == 1:
		switch string(segs[0]) {
		case "healthz":
			r = rHealthz
		case "readyz":
			r = rReadyz
		case "metrics":
			r = rMetrics
		case "openapi.json":
			r = rOpenAPI
		}
	case n >= 3 && string(segs[0]) == "api" && string(segs[1]) == "v1":
		r, p1, p2 = matchAPI(segs[2:n])
	case n == 3 && string(segs[0]) == "admin" && string(segs[1]) == "v1":
		switch string(segs[2]) {
		case "catalog":
			r = rAdminCatalog
		case "flash-sales":
			r = adminByMethod(method, rAdminSales, rAdminSaleGet)
		case "group-buys":
			r = adminByMethod(method, rAdminDeals, rAdminDealGet)
		case "reconcile":
			r = rAdminReconcile
		case "recover":
			r = rAdminRecover
		case "stats":
			r = rAdminStats
		case "orders":
			r = rAdminOrders
		case "attribution":
			r = rAdminAttrib
		}
	case (n == 4 || n == 5) && string(segs[0]) == "admin" && string(segs[1]) == "v1":
		r, p1, p2 = matchAdminSale(segs[2:n])
	case n == 3 && string(segs[0]) == "h5" && string(segs[1]) == "stores":
		r, p1 = rH5Store, segs[2]
	case n == 4 && string(segs[0]) == "internal" && string(segs[1]) == "v1" &&
		string(segs[2]) == "inventory" && string(segs[3]) == "feed":
		r = rFeed
	}
	if r == rUnknown {
		return rUnknown, nil, nil, false
	}
	m := routes[r].method
	methodOK = string(method) == m || (m == "GET" && string(method) == "HEAD")
	return r, p1, p2, methodOK
}

// matchAPI matches the segments after /api/v1/.
func matchAPI(s [][]byte) (r routeID, p1, p2 []byte) {
	switch string(s[0]) {
	case "session":
		if len(s) == 1 {
			return rSession, nil, nil
		}
	case "checkout":
		if len(s) == 1 {
			return rCheckout, nil, nil
		}
	case "stores":
		if len(s) == 3 && string(s[2]) == "page" {
			return rStorePage, s[1], nil
		}
		if len(s) == 4 && string(s[2]) == "products" {
			return rProductPage, s[1], s[3]
		}
	case "flash-sales":
		if len(s) == 2 {
			return rSaleGet, s[1], nil
		}
		if len(s) == 3 && string(s[2]) == "reservations" {
			return rSaleReserve, s[1], nil
		}
		if len(s) == 3 && string(s[2]) == "registrations" {
			return rSaleRegister, s[1], nil
		}
	case "group-buys":
		switch {
		case len(s) == 2:
			return rDealGet, s[1], nil
		case len(s) == 3 && string(s[2]) == "teams":
			return rTeamOpen, s[1], nil
		case len(s) == 4 && string(s[2]) == "teams":
			return rTeamGet, s[1], s[3]
		case len(s) == 5 && string(s[2]) == "teams" && string(s[4]) == "members":
			return rTeamJoin, s[1], s[3]
		}
	case "reservations":
		switch {
		case len(s) == 2:
			return rResGet, s[1], nil
		case len(s) == 3 && string(s[2]) == "pay":
			return rResPay, s[1], nil
		case len(s) == 3 && string(s[2]) == "cancel":
			return rResCancel, s[1], nil
		case len(s) == 3 && string(s[2]) == "prepay":
			return rResPrepay, s[1], nil
		}
	case "payments":
		if len(s) == 3 && string(s[1]) == "wechat" && string(s[2]) == "notify" {
			return rPayNotify, nil, nil
		}
	case "orders":
		if len(s) == 2 {
			return rOrderGet, s[1], nil
		}
	case "me":
		if len(s) == 2 && string(s[1]) == "orders" {
			return rMyOrders, nil, nil
		}
	}
	return rUnknown, nil, nil
}
