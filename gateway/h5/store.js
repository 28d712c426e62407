(function () {
  "use strict";
  // The page is readable without this script; it adds the countdowns (on
  // the server's clock), a login, and reserve and pay buttons through the
  // public API (API.md). Text goes in with textContent only.
  var root = document.documentElement;
  var data = JSON.parse(document.getElementById("h5-data").textContent);
  // offset is the server's clock minus ours: the page carries the server's
  // time when it was sent; GET /api/v1/flash-sales/{id} corrects it (a
  // page revalidated to 304 keeps its old time).
  var offset = (Number(root.getAttribute("data-now-ms")) || Date.now()) - Date.now();
  function now() { return Date.now() + offset; }
  function $(id) { return document.getElementById(id); }
  var TOKEN = "surge.token", USER = "surge.user";
  var store = window.sessionStorage;

  var WORDS = {
    "-1": ["网络错误，请重试", "Network error, please retry"],
    40000: ["请求有误", "Bad request"],
    40100: ["请先登录（或登录已过期）", "Please log in (the session may have expired)"],
    40300: ["风控拦截，请稍后再试", "Blocked by risk control"],
    40301: ["没有权限", "Not allowed"],
    40302: ["本场需要预约，或未中签", "This sale needs registration, or you were not drawn"],
    40400: ["找不到", "Not found"],
    40900: ["已抢光", "Sold out"],
    40901: ["已达每人限购数量", "Per-person limit reached"],
    40902: ["活动未开始或已结束", "The sale has not started, or has ended"],
    40903: ["状态不对（可能已过期或已取消）", "Wrong state (expired or cancelled?)"],
    40904: ["重复的请求与上次不一致", "Same Idempotency-Key, different request"],
    41300: ["请求太大", "Request too large"],
    42900: ["人太多了，请稍后再试", "Too many requests, please retry shortly"],
    50000: ["服务器出错了", "Server error"],
    50300: ["服务繁忙，请稍后再试", "Service busy, please retry shortly"]
  };
  function words(r) {
    var w = WORDS[r.code] || ["出错了", "Something went wrong"];
    var s = w[0] + " · " + w[1];
    if (r.msg) { s += "（" + r.msg + "）"; }
    if (r.retryAfter) { s += " · " + r.retryAfter + " 秒后重试 / retry in " + r.retryAfter + " s"; }
    return s;
  }
  function say(text, ok) {
    var m = $("msg");
    m.textContent = text;
    m.className = ok ? "msg ok" : "msg";
    m.hidden = false;
  }

  // api calls the public API and resolves to {code, msg, data}; a network
  // failure is code -1.
  function api(method, path, body, headers) {
    var h = {"Accept": "application/json"};
    var tok = store.getItem(TOKEN);
    if (tok) { h["Authorization"] = "Bearer " + tok; }
    if (body !== undefined) { h["Content-Type"] = "application/json"; }
    for (var k in headers || {}) { h[k] = headers[k]; }
    return fetch(path, {method: method, headers: h, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body)})
      .then(function (res) {
        return res.json().then(function (j) {
          j.status = res.status;
          j.retryAfter = res.headers.get("Retry-After");
          return j;
        }, function () { return {code: res.status >= 500 ? 50000 : 40000, msg: "HTTP " + res.status}; });
      }, function () { return {code: -1, msg: ""}; });
  }
  function randomKey() {
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    return "h5-" + Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
  }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function span(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return (d > 0 ? d + "天 " : "") + two(h) + ":" + two(m) + ":" + two(s % 60);
  }
  function yuan(fen) { return "¥" + (fen / 100).toFixed(2); }

  // --- login (the dev provider takes the code as the user) ---
  function showUser() {
    var u = store.getItem(USER), el = $("login-state");
    el.hidden = !u;
    el.textContent = u ? "已登录 · Logged in: " + u : "";
  }
  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var code = $("login-code").value.trim();
    if (!code) { return; }
    $("login-btn").disabled = true;
    api("POST", "/api/v1/session", {code: code}).then(function (r) {
      $("login-btn").disabled = false;
      if (r.code !== 0) { say("登录失败 · Login failed: " + words(r)); return; }
      store.setItem(TOKEN, r.data.token);
      store.setItem(USER, r.data.user_id);
      showUser();
      say("登录成功 · Logged in", true);
      tick();
    });
  });

  // --- the page-view token ---
  // The page API answers with a short-lived signed token in
  // X-Surge-Page-Token; a reserve carries it back, so the server can tell
  // a shopper who saw the page from a script that never did. One is
  // fetched at load and after every reserve, and renewed every few
  // minutes (a token lives 10 minutes); a reserve sends the newest one
  // that is at least a second old (the server refuses a reserve fired
  // sooner after its page view than any human would), waiting for it
  // right after the page was opened.
  var PAGE_TOKEN_AGE_MIN = 1000, PAGE_TOKEN_RENEW = 180000;
  var pageToks = []; // {tok, at}: newest last, at most three
  function fetchPageToken() {
    var path = "/api/v1/stores/" + encodeURIComponent(data.store_id) + "/page" +
      (data.guide_id ? "?guide=" + encodeURIComponent(data.guide_id) : "");
    return fetch(path, {headers: {"Accept": "application/json"}, cache: "no-store"}).then(function (res) {
      var tok = res.headers.get("X-Surge-Page-Token");
      if (tok) {
        pageToks.push({tok: tok, at: Date.now()});
        if (pageToks.length > 3) { pageToks.shift(); }
      }
    }, function () {});
  }
  var firstPageToken = fetchPageToken();
  setInterval(fetchPageToken, PAGE_TOKEN_RENEW);
  // withPageToken calls fn with the newest token at least
  // PAGE_TOKEN_AGE_MIN old, waiting for one if needed ("" when the page
  // API gave none).
  function withPageToken(fn) {
    firstPageToken.then(function () {
      var t = Date.now();
      for (var i = pageToks.length - 1; i >= 0; i--) {
        if (t - pageToks[i].at >= PAGE_TOKEN_AGE_MIN) { fn(pageToks[i].tok); return; }
      }
      if (!pageToks.length) { fn(""); return; }
      var tok = pageToks[pageToks.length - 1];
      setTimeout(function () { fn(tok.tok); }, PAGE_TOKEN_AGE_MIN - (t - tok.at));
    });
  }

  // --- flash sales ---
  var sales = [];
  var byID = {};
  data.sales.forEach(function (s) { byID[s.sale_id] = s; });
  Array.prototype.forEach.call(document.querySelectorAll("[data-sale]"), function (el) {
    var s = byID[el.getAttribute("data-sale")];
    if (!s) { return; }
    s.el = el;
    s.remEl = el.querySelector(".remaining");
    s.cdEl = el.querySelector(".countdown");
    s.btn = el.querySelector(".reserve");
    s.btn.addEventListener("click", function () { reserve(s); });
    sales.push(s);
  });
  function refresh(s) {
    var t0 = Date.now();
    return api("GET", "/api/v1/flash-sales/" + encodeURIComponent(s.sale_id)).then(function (r) {
      if (r.code !== 0) { return; }
      var d = r.data, t1 = Date.now();
      if (d.server_time_ms) { offset = d.server_time_ms + (t1 - t0) / 2 - t1; }
      s.remaining = d.remaining;
      s.status = d.status;
      s.starts_at_ms = d.starts_at_ms;
      s.ends_at_ms = d.ends_at_ms;
      s.remEl.textContent = String(Math.max(0, d.remaining));
      tick();
    });
  }
  function tick() {
    var t = now(), logged = !!store.getItem(TOKEN);
    sales.forEach(function (s) {
      var text, can = false, label = "立即抢购 · Reserve";
      if (t < s.starts_at_ms) {
        text = "距开始 " + span(s.starts_at_ms - t);
        label = "即将开始 · Starts soon";
        s.wasUpcoming = true;
      } else if (t < s.ends_at_ms) {
        if (s.wasUpcoming) { s.wasUpcoming = false; refresh(s); }
        text = "距结束 " + span(s.ends_at_ms - t);
        if (s.status === "paused") { label = "已暂停 · Paused"; }
        else if (s.remaining <= 0) { label = "已抢光 · Sold out"; }
        else { can = true; }
      } else {
        text = "已结束 · Ended";
        label = "已结束 · Ended";
      }
      s.cdEl.textContent = text;
      s.btn.disabled = !can || s.busy;
      s.btn.textContent = can && !logged ? "登录后抢购 · Log in to reserve" : label;
    });
    tickReservation(t);
  }
  function reserve(s) {
    if (!store.getItem(TOKEN)) {
      say("请先登录 · Please log in first");
      $("login-code").focus();
      return;
    }
    // One key per attempt: a retry after a network error sends it again,
    // so the server gives the first answer instead of a second unit.
    s.key = s.key || randomKey();
    s.busy = true;
    tick();
    var body = {quantity: 1};
    if (data.guide_id) { body.guide_id = data.guide_id; }
    withPageToken(function (pageTok) {
      var hdr = {"Idempotency-Key": s.key};
      if (pageTok) { hdr["X-Surge-Page-Token"] = pageTok; }
      api("POST", "/api/v1/flash-sales/" + encodeURIComponent(s.sale_id) + "/reservations", body, hdr).then(function (r) {
        reserved(s, r);
      });
    });
  }
  function reserved(s, r) {
    fetchPageToken(); // a fresh token for the next attempt
    s.busy = false;
    if (r.code !== -1) { s.key = ""; }
    if (r.code !== 0) {
      say("抢购失败 · Not reserved: " + words(r));
      if (r.code === 40100) { store.removeItem(TOKEN); store.removeItem(USER); showUser(); }
      refresh(s);
      return;
    }
    showReservation(r.data);
    say("抢到了！请在时限内支付 · Reserved! Please pay before the hold ends", true);
    refresh(s);
  }

  // --- the reservation and its payment ---
  var res = null;
  function showReservation(r) {
    res = r;
    $("reservation").hidden = false;
    $("res-id").textContent = r.reservation_id;
    $("res-price").textContent = yuan(r.unit_price);
    $("res-qty").textContent = String(r.quantity);
    $("res-state").textContent = "待支付 · held";
    $("pay-btn").disabled = false;
    $("prepay").hidden = true;
    tick();
  }
  function tickReservation(t) {
    if (!res || res.paid) { return; }
    var left = res.expires_at_ms - t;
    $("res-expires").textContent = left > 0 ? "请在 " + span(left) + " 内支付 · Pay within " + span(left) : "已过期 · Expired";
  }
  $("pay-btn").addEventListener("click", function () {
    if (!res) { return; }
    var id = res.reservation_id, btn = $("pay-btn");
    btn.disabled = true;
    api("POST", "/api/v1/reservations/" + encodeURIComponent(id) + "/pay", {payment_id: "h5-" + id}).then(function (r) {
      if (r.code === 0) {
        res.paid = true;
        $("res-state").textContent = "已支付 · paid";
        $("res-expires").textContent = r.data.order_id ? "订单 · Order " + r.data.order_id : "";
        say("支付成功 · Paid", true);
        return;
      }
      if (r.code === 40301) {
        say("本店通过微信支付付款，正在下单… · Payment goes through WeChat Pay; placing the order…", true);
        return api("POST", "/api/v1/reservations/" + encodeURIComponent(id) + "/prepay").then(function (p) {
          btn.disabled = false;
          var pre = $("prepay");
          pre.hidden = false;
          if (p.code !== 0) {
            pre.textContent = "";
            say("微信支付下单失败 · WeChat Pay prepay failed: " + words(p));
            return;
          }
          pre.textContent = JSON.stringify(p.data, null, 2);
          say("本店通过微信支付付款，请在微信中完成支付（wx.requestPayment 参数见下） · Payment goes through WeChat Pay: pay in WeChat with the parameters below", true);
        });
      }
      btn.disabled = false;
      say("支付失败 · Not paid: " + words(r));
    });
  });

  // Catalog pictures that do not load leave the placeholder.
  document.addEventListener("error", function (ev) {
    var t = ev.target;
    if (t && t.tagName === "IMG" && t.parentNode) { t.parentNode.removeChild(t); }
  }, true);

  showUser();
  tick();
  setInterval(tick, 250);
  sales.forEach(refresh);
  // Live counts now and then (the page itself changes with the stock
  // state only), with jitter so that a crowd does not ask in step.
  setInterval(function () { sales.forEach(refresh); }, 20000 + Math.floor(Math.random() * 10000));
})();
