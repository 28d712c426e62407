(function () {
  'use strict';
  // The operator's live page. It holds no data of its own: everything is
  // read through the admin API with the token kept in sessionStorage.
  // Cost to the server per open page: GET /admin/v1/stats once a second
  // (every 10 s while the tab is hidden), the sale and deal lists every
  // 5 s, attribution once a minute (never again once it answers 404).
  var TOKEN_KEY = 'surge.adminToken';
  var STATS_MS = 1000, STATS_HIDDEN_MS = 10000, LISTS_MS = 5000, ATTRIB_MS = 60000;
  var RATE_SAMPLES = 11; // about 10 s of stats, for the rate

  var $ = function (id) { return document.getElementById(id); };
  var st = {
    token: null,
    gen: 0,        // bumped on log-in and log-out: older loops stop
    timer: 0,
    offsetMs: 0,   // server clock minus this browser's clock
    haveClock: false,
    items: {},     // "flash/<id>" or "group/<id>" -> item
    order: [],
    listsAt: 0, listsBusy: false,
    acts: 0,       // bumped when an action is sent and when it is answered
    attribAt: 0, attribBusy: false, attribOn: true
  };

  // --- small helpers ---

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function num(n) { return typeof n === 'number' ? n.toLocaleString('en-US') : '—'; }
  function yuan(fen) { return '¥' + (fen / 100).toFixed(2); }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function serverNow() { return Date.now() + st.offsetMs; }
  function duration(ms) {
    if (ms < 0) ms = 0;
    var s = Math.floor(ms / 1000), d = Math.floor(s / 86400);
    s -= d * 86400;
    var hms = pad(Math.floor(s / 3600)) + ':' + pad(Math.floor(s / 60) % 60) + ':' + pad(s % 60);
    return d > 0 ? d + '天 ' + hms : hms;
  }
  function storage(fn) { try { return fn(window.sessionStorage); } catch (e) { return null; } }

  // api calls path with the admin token and resolves to {status, env}
  // (env is the JSON envelope, or null when the answer was not one).
  function api(method, path, body) {
    var headers = { 'Authorization': 'Bearer ' + st.token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit'
    }).then(function (r) {
      return r.text().then(function (t) {
        var env = null;
        try { env = JSON.parse(t); } catch (e) { env = null; }
        return { status: r.status, env: env, date: r.headers.get('Date') };
      });
    });
  }
  function errText(a) {
    if (a.env && typeof a.env.code === 'number') return a.env.code + ' ' + (a.env.msg || '');
    return 'HTTP ' + a.status;
  }

  // authFailed handles an answer that says the token is no good: back to
  // the token form with a clear message. It returns true when it did.
  function authFailed(a) {
    var code = a.env && a.env.code;
    var text;
    if (code === 40100) {
      text = '管理令牌不对或缺失 · Wrong or missing admin token (' + errText(a) + ')';
    } else if (code === 40300) {
      text = '这是用户会话令牌，不是管理令牌 · That is a user session token, not the admin token';
    } else if (code === 42900 && /admin token/.test((a.env && a.env.msg) || '')) {
      text = '此地址输错令牌次数过多，请稍后再试 · Too many wrong admin tokens from this address; wait a little and retry (' + errText(a) + ')';
    } else {
      return false;
    }
    logout(text);
    return true;
  }

  // --- log-in and log-out ---

  function login(token) {
    st.token = token;
    st.gen++;
    st.listsAt = 0;
    st.attribAt = 0;
    $('login').hidden = true;
    $('live').hidden = false;
    $('logout').hidden = false;
    $('login-msg').textContent = '';
    setConn('wait', '连接中 · connecting');
    loop(st.gen);
  }

  function logout(message) {
    st.gen++;
    clearTimeout(st.timer);
    st.token = null;
    storage(function (s) { s.removeItem(TOKEN_KEY); });
    $('live').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-msg').textContent = message || '';
    $('token').value = '';
    $('token').focus();
    setConn('', '未连接 · not connected');
  }

  function setConn(state, text) {
    var c = $('conn');
    c.className = 'conn' + (state === 'ok' ? ' ok' : state === 'bad' ? ' bad' : '');
    c.textContent = text;
  }

  function setMsg(text, kind) {
    var m = $('msg');
    m.className = 'msg' + (kind ? ' ' + kind : '');
    m.textContent = text;
  }

  // --- the refresh loop ---

  function loop(gen) {
    if (gen !== st.gen) return;
    var t0 = Date.now();
    var next = function () {
      if (gen !== st.gen) return;
      var every = document.hidden ? STATS_HIDDEN_MS : STATS_MS;
      st.timer = setTimeout(function () { loop(gen); }, Math.max(100, every - (Date.now() - t0)));
    };
    api('GET', '/admin/v1/stats').then(function (a) {
      if (gen !== st.gen) return;
      if (a.env && a.env.code === 0 && a.env.data) {
        onStats(a.env.data, t0, Date.now(), a.date);
        setConn('ok', '实时 · live');
      } else if (!authFailed(a)) {
        setConn('bad', '出错 · ' + errText(a));
      }
    }, function () {
      if (gen === st.gen) setConn('bad', '连不上服务器 · cannot reach the server');
    }).then(function () {
      if (gen !== st.gen) return;
      refreshLists(gen);
      refreshAttribution(gen);
    }).then(next, next);
  }

  function refreshLists(gen) {
    if (st.listsBusy || Date.now() - st.listsAt < LISTS_MS) return;
    st.listsAt = Date.now();
    st.listsBusy = true;
    var acts = st.acts;
    Promise.all([api('GET', '/admin/v1/flash-sales'), api('GET', '/admin/v1/group-buys')]).then(function (rs) {
      if (gen !== st.gen) return;
      // A pause, resume or end sent or answered while the lists were
      // read: they may be older than its answer, which is on the page
      // already. Drop them; the next refresh reads again.
      if (acts !== st.acts) { st.listsAt = 0; return; }
      var truncated = false;
      for (var i = 0; i < rs.length; i++) {
        var a = rs[i];
        if (!(a.env && a.env.code === 0 && a.env.data)) {
          if (authFailed(a)) return;
          setMsg('列表读取失败 · cannot list ' + (i === 0 ? 'sales' : 'deals') + ': ' + errText(a), 'err');
          continue;
        }
        var list = (i === 0 ? a.env.data.sales : a.env.data.deals) || [];
        truncated = truncated || !!a.env.data.truncated;
        for (var j = 0; j < list.length; j++) setMeta(list[j]);
      }
      $('sales-note').textContent = truncated ? '（列表已截断 · list truncated）' : '';
      render();
    }, function () {}).then(function () { st.listsBusy = false; });
  }

  function refreshAttribution(gen) {
    if (!st.attribOn || st.attribBusy || Date.now() - st.attribAt < ATTRIB_MS) return;
    st.attribAt = Date.now();
    st.attribBusy = true;
    api('GET', '/admin/v1/attribution').then(function (a) {
      if (gen !== st.gen) return;
      if (a.status === 404) { // not on this server: no panel
        st.attribOn = false;
        $('p-guides').hidden = true;
        return;
      }
      if (a.env && a.env.code === 0 && a.env.data) renderGuides(a.env.data);
    }, function () {}).then(function () { st.attribBusy = false; });
  }

  // --- the model ---

  function item(kind, id) {
    var k = kind + '/' + id;
    var it = st.items[k];
    if (!it) {
      it = st.items[k] = { kind: kind, id: id, meta: null, pool: null, samples: [], card: null };
      st.order.push(k);
      st.order.sort(function (a, b) { // flash sales first, then by id
        return a < b ? -1 : a > b ? 1 : 0;
      });
    }
    return it;
  }

  // setMeta takes a sale or deal as the admin list (or a control) shows
  // it: status, window, price, and counters as of then.
  function setMeta(m) {
    var it = item(m.kind === 'group' ? 'group' : 'flash', m.sale_id || m.deal_id);
    it.meta = m;
    if (!it.pool) it.pool = { supplied: m.supplied, held: m.held, sold: m.sold, remaining: m.remaining };
  }

  function onStats(d, t0, t1, date) {
    var mid = t0 + (t1 - t0) / 2;
    if (typeof d.server_time_ms === 'number') {
      st.offsetMs = d.server_time_ms - mid;
      st.haveClock = true;
    } else if (date) { // a second's resolution, better than the browser's clock
      st.offsetMs = Date.parse(date) + 500 - mid;
      st.haveClock = true;
    }
    var at = serverNow();
    var sets = [['flash', d.sales], ['group', d.deals]];
    for (var i = 0; i < sets.length; i++) {
      var pools = sets[i][1] || {};
      for (var id in pools) {
        if (!Object.prototype.hasOwnProperty.call(pools, id)) continue;
        var it = item(sets[i][0], id), p = pools[id];
        it.pool = p;
        it.samples.push({ at: at, taken: p.held + p.sold });
        if (it.samples.length > RATE_SAMPLES) it.samples.shift();
      }
    }
    renderSummary(d);
    render();
  }

  function rateOf(it) {
    var s = it.samples;
    if (s.length < 2) return null;
    var a = s[0], b = s[s.length - 1], dt = (b.at - a.at) / 1000;
    return dt > 0 ? (b.taken - a.taken) / dt : null;
  }

  // --- rendering ---

  var STATUS_ZH = { upcoming: '未开始', active: '进行中', paused: '已暂停', ended: '已结束' };
  var NUMS = [['supplied', '供应 supplied'], ['held', '已占 held'], ['sold', '已售 sold'], ['remaining', '剩余 remaining'], ['rate', '速率 /s']];

  function makeCard(it) {
    var c = el('article', 'card');
    c.dataset.kind = it.kind;
    c.dataset.id = it.id;
    var head = el('div', 'head');
    head.appendChild(el('span', 'kind', it.kind === 'group' ? '拼团 group' : '闪购 flash'));
    head.appendChild(el('b', 'id', it.id));
    head.appendChild(el('span', 'status', '…'));
    c.appendChild(head);
    c.appendChild(el('div', 'title', ''));
    c.appendChild(el('div', 'sub', ''));
    c.appendChild(el('div', 'countdown', ''));
    var bar = el('div', 'bar');
    bar.appendChild(el('span', 'b-sold'));
    bar.appendChild(el('span', 'b-held'));
    bar.appendChild(el('span', 'b-rem'));
    c.appendChild(bar);
    var nums = el('dl', 'nums');
    for (var i = 0; i < NUMS.length; i++) {
      var d = el('div');
      d.appendChild(el('dt', '', NUMS[i][1]));
      d.appendChild(el('dd', 'n-' + NUMS[i][0], '—'));
      nums.appendChild(d);
    }
    c.appendChild(nums);
    var btns = el('div', 'btns');
    var acts = [['pause', '暂停 pause', ''], ['resume', '恢复 resume', ''], ['end', '结束 end', 'danger']];
    for (var j = 0; j < acts.length; j++) {
      var b = el('button', acts[j][2], acts[j][1]);
      b.type = 'button';
      b.dataset.act = acts[j][0];
      btns.appendChild(b);
    }
    c.appendChild(btns);
    return c;
  }

  function q(card, sel) { return card.querySelector(sel); }

  function render() {
    var box = $('sales');
    for (var i = 0; i < st.order.length; i++) {
      var it = st.items[st.order[i]];
      if (!it.card) it.card = makeCard(it);
      if (box.children[i] !== it.card) box.insertBefore(it.card, box.children[i] || null);
      renderCard(it);
    }
    $('no-sales').hidden = st.order.length > 0;
  }

  function renderCard(it) {
    var c = it.card, m = it.meta, p = it.pool || {};
    var status = m ? m.status : '';
    var badge = q(c, '.status');
    badge.textContent = status ? (STATUS_ZH[status] || '') + ' ' + status : '…';
    badge.className = 'status' + (status ? ' s-' + status : '');
    if (m) {
      q(c, '.title').textContent = m.title || m.sku_id;
      q(c, '.sub').textContent = named(m.store_name, m.store_id) + ' · SKU ' + m.sku_id + ' · ' + yuan(m.price) + ' · 数量 ' + num(m.quantity);
    }
    renderCountdown(it);
    var total = p.supplied || 0;
    var parts = [['.b-sold', p.sold], ['.b-held', p.held], ['.b-rem', p.remaining]];
    for (var i = 0; i < parts.length; i++) {
      q(c, parts[i][0]).style.width = (total > 0 ? 100 * (parts[i][1] || 0) / total : 0) + '%';
    }
    q(c, '.n-supplied').textContent = num(p.supplied);
    q(c, '.n-held').textContent = num(p.held);
    q(c, '.n-sold').textContent = num(p.sold);
    q(c, '.n-remaining').textContent = num(p.remaining);
    var r = rateOf(it);
    q(c, '.n-rate').textContent = r === null ? '—' : r.toFixed(1);
    q(c, '[data-act=pause]').disabled = !m || status === 'paused' || status === 'ended';
    q(c, '[data-act=resume]').disabled = !m || status !== 'paused';
    q(c, '[data-act=end]').disabled = !m || status === 'ended';
  }

  function renderCountdown(it) {
    var m = it.meta, cd = q(it.card, '.countdown');
    if (!m || !st.haveClock) { cd.textContent = ''; return; }
    var now = serverNow();
    switch (m.status) {
      case 'upcoming':
        cd.textContent = '距开始 · starts in ' + duration(m.starts_at_ms - now);
        break;
      case 'active':
        cd.textContent = '距结束 · ends in ' + duration(m.ends_at_ms - now);
        break;
      case 'paused':
        cd.textContent = '已暂停，距结束 · paused, ends in ' + duration(m.ends_at_ms - now);
        break;
      default:
        cd.textContent = '已结束 · ended ' + clockAt(m.ended_at_ms || m.ends_at_ms);
    }
  }

  function clockAt(ms) {
    var d = new Date(ms);
    return (d.getMonth() + 1) + '/' + d.getDate() + ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  // tick moves the clock and the countdowns between two stats answers.
  function tick() {
    if (!st.token || !st.haveClock) return;
    var d = new Date(serverNow());
    $('clock').textContent = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    for (var i = 0; i < st.order.length; i++) {
      var it = st.items[st.order[i]];
      if (it.card) renderCountdown(it);
    }
  }

  // kv fills a <dl> from rows [label, value]; none is shown when empty.
  function kv(id, rows, none) {
    var dl = $(id);
    dl.textContent = '';
    if (!rows.length) {
      dl.appendChild(el('dd', 'none', none || '无 · none'));
      return;
    }
    for (var i = 0; i < rows.length; i++) {
      dl.appendChild(el('dt', '', rows[i][0]));
      dl.appendChild(el('dd', '', rows[i][1]));
    }
  }

  function countRows(obj, nonZero) {
    var rows = [], keys = Object.keys(obj || {}).sort();
    for (var i = 0; i < keys.length; i++) {
      if (!nonZero || obj[keys[i]]) rows.push([keys[i], num(obj[keys[i]])]);
    }
    return rows;
  }

  function ms(v) { return v >= 100 ? v.toFixed(0) + ' ms' : v >= 1 ? v.toFixed(1) + ' ms' : v.toFixed(2) + ' ms'; }

  // renderAlert says what is broken below the gateway: a data loss of the
  // records (reservations stopped until POST /admin/v1/recover), backend
  // circuits not closed, parts of the stats that could not be read.
  function renderAlert(d) {
    var lines = [];
    if (d.data_lost) {
      lines.push('Redis 数据丢失，已停止预占 · Redis lost data at ' + d.data_lost.at + ' (' + d.data_lost.reason +
        '): reservations are stopped until an operator calls POST /admin/v1/recover');
    }
    var cs = d.circuits || [];
    for (var i = 0; i < cs.length; i++) {
      if (cs[i].state !== 'closed') {
        lines.push('后端不可用 · backend ' + cs[i].backend + ' is down: circuit ' + cs[i].state +
          (cs[i].opened_at ? ' since ' + cs[i].opened_at : '') + ' (answered 503 at once)');
      }
    }
    var ms = d.missing || [];
    if (ms.length) {
      var names = [];
      for (var j = 0; j < ms.length && j < 10; j++) names.push(ms[j].kind + ' ' + (ms[j].id || '') + ': ' + ms[j].why);
      lines.push('无法读取 · missing from these stats (' + ms.length + '): ' + names.join('; ') + (ms.length > 10 ? '; …' : ''));
    }
    var el = $('alert');
    el.textContent = lines.join('\n');
    el.hidden = lines.length === 0;
  }

  function renderSummary(d) {
    renderAlert(d);
    var lat = d.latency;
    if (lat) {
      var rows = [];
      var w = [['近 ' + Math.round(lat.recent.seconds) + ' 秒 · last ' + Math.round(lat.recent.seconds) + ' s', lat.recent],
        ['启动以来 · since start', lat.since_start]];
      for (var i = 0; i < w.length; i++) {
        var x = w[i][1];
        rows.push([w[i][0] + ' p50', x.count ? ms(x.p50_ms) : '—']);
        rows.push([w[i][0] + ' p99', x.count ? ms(x.p99_ms) : '—']);
        rows.push([w[i][0] + ' 次数 count', num(x.count)]);
      }
      kv('latency', rows);
      $('latency-note').textContent = '路由 ' + lat.route + '，网关从收到到写完回答的时间，按直方图分桶估算 · gateway time from routing to answer, estimated from histogram buckets.';
    }
    var o = d.orders || {};
    var orows = [['已写入 written', num(o.written)], ['待写 lag', num(o.lag)]];
    if (o.lag_oldest_ms) orows.push(['最久等待 oldest', (o.lag_oldest_ms / 1000).toFixed(1) + ' s']);
    orows.push(['写入失败 failures (retried)', num(o.failures)]);
    kv('orders', orows);
    var pay = d.payments || {};
    kv('payments', [['通道 provider', pay.provider || '—'], ['未完成退款 refunds open', num(pay.refunds_open)]]);
    kv('sheds', countRows(d.sheds, true), '无降载 · no sheds');
    kv('throttles', countRows(d.throttles, true), '无 · none');
    kv('inflight', countRows(d.inflight, false));
    kv('risk', countRows(d.risk_denials, true), '无拒绝 · no denials');
  }

  // named shows a catalog name with its id ("静安店 s1"), or the id alone.
  function named(name, id) { return name ? name + ' ' + id : id; }

  function renderGuides(data) {
    var guides = data.guides || [];
    var body = $('guides').tBodies[0], foot = $('guides').tFoot;
    body.textContent = '';
    foot.textContent = '';
    if (!guides.length) {
      var tr0 = el('tr'), td = el('td', 'muted', '暂无订单 · no orders yet');
      td.colSpan = 6;
      tr0.appendChild(td);
      body.appendChild(tr0);
    }
    for (var i = 0; i < guides.length; i++) {
      var g = guides[i], tr = el('tr');
      tr.dataset.store = g.store_id;
      tr.dataset.guide = g.guide_id;
      var cells = [named(g.store_name, g.store_id), g.guide_id ? named(g.guide_name, g.guide_id) : '（无导购）no guide',
        num(g.orders), num(g.units), yuan(g.amount || 0), num(g.refunded_orders || 0)];
      for (var j = 0; j < cells.length; j++) tr.appendChild(el('td', 'c' + j, cells[j]));
      body.appendChild(tr);
    }
    var t = data.totals;
    if (t && guides.length) {
      var tf = el('tr');
      var sums = ['合计 total', '', num(t.orders), num(t.units), yuan(t.amount || 0), num(t.refunded_orders || 0)];
      for (var k = 0; k < sums.length; k++) tf.appendChild(el('td', 'c' + k, sums[k]));
      foot.appendChild(tf);
    }
    $('guides-at').textContent = '更新于 · as of ' + clockAt(serverNow());
    $('p-guides').hidden = false;
  }

  // --- order export ---

  // exportOrders fetches GET /admin/v1/orders?format=csv with the form's
  // filter (the token goes in the header, so a plain link cannot do it)
  // and hands the file to the browser as a download; #export-link keeps
  // it for saving again.
  function exportOrders() {
    var q = ['format=csv'];
    var add = function (key, v) { if (v) q.push(key + '=' + encodeURIComponent(v)); };
    var at = function (id) { var d = new Date($(id).value); return $(id).value && !isNaN(d) ? d.toISOString() : ''; };
    add('store_id', $('ex-store').value.trim());
    add('guide_id', $('ex-guide').value.trim());
    add('sale_id', $('ex-sale').value.trim());
    add('since', at('ex-since'));
    add('until', at('ex-until'));
    var msg = $('export-msg'), gen = st.gen;
    msg.className = 'small';
    msg.textContent = '导出中 · exporting …';
    $('ex-go').disabled = true;
    fetch('/admin/v1/orders?' + q.join('&'), {
      headers: { 'Authorization': 'Bearer ' + st.token }, cache: 'no-store', credentials: 'omit'
    }).then(function (r) {
      // The bytes as sent: text() would drop the byte-order mark Excel needs.
      return r.arrayBuffer().then(function (buf) {
        if (gen !== st.gen) return;
        var t = new TextDecoder().decode(buf);
        if (!r.ok || !/^text\/csv/.test(r.headers.get('Content-Type') || '')) {
          var a = { status: r.status, env: null };
          try { a.env = JSON.parse(t); } catch (e) { a.env = null; }
          if (authFailed(a)) return;
          msg.className = 'small err';
          msg.textContent = '导出失败 · export failed: ' + errText(a);
          return;
        }
        var rows = t.split('\n').length - 2; // the header, and the last line's end
        var old = $('export-link');
        if (old) { URL.revokeObjectURL(old.href); old.remove(); }
        var link = el('a', '', '保存 · save orders.csv');
        link.id = 'export-link';
        link.href = URL.createObjectURL(new Blob([buf], { type: 'text/csv;charset=utf-8' }));
        link.download = 'orders-' + new Date().toISOString().replace(/[:.]/g, '-') + '.csv';
        msg.textContent = '已导出 ' + rows + ' 笔订单 · exported ' + rows + ' orders ';
        msg.appendChild(link);
        link.click();
      });
    }, function () {
      msg.className = 'small err';
      msg.textContent = '导出失败 · cannot reach the server';
    }).then(function () { $('ex-go').disabled = false; });
  }

  // --- actions ---

  var pending = null;
  function ask(text, onOK) {
    pending = onOK;
    $('dlg-text').textContent = text;
    $('dlg').hidden = false;
    $('dlg-cancel').focus();
  }
  function answer(ok) {
    var fn = pending;
    pending = null;
    $('dlg').hidden = true;
    if (ok && fn) fn();
  }

  var ACT_ZH = { pause: '暂停', resume: '恢复', end: '结束' };

  function control(kind, id, act) {
    var path = '/admin/v1/' + (kind === 'group' ? 'group-buys' : 'flash-sales') + '/' + encodeURIComponent(id) + '/' + act;
    var gen = st.gen;
    setMsg(ACT_ZH[act] + ' ' + id + ' …', '');
    st.acts++;
    api('POST', path).then(function (a) {
      st.acts++;
      if (gen !== st.gen) return;
      if (a.env && a.env.code === 0 && a.env.data) {
        setMeta(a.env.data);
        render();
        setMsg('已' + ACT_ZH[act] + ' ' + id + ' · ' + act + ' done: status ' + a.env.data.status, 'ok');
      } else if (!authFailed(a)) {
        setMsg(ACT_ZH[act] + ' ' + id + ' 失败 · ' + act + ' failed: ' + errText(a), 'err');
      }
    }, function () {
      setMsg(ACT_ZH[act] + ' ' + id + ' 失败 · cannot reach the server', 'err');
    });
  }

  // --- wiring ---

  $('login-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var t = $('token').value.trim();
    if (!t) {
      $('login-msg').textContent = '请输入令牌 · enter the token';
      return;
    }
    storage(function (s) { s.setItem(TOKEN_KEY, t); });
    $('token').value = '';
    login(t);
  });
  $('logout').addEventListener('click', function () { logout(''); });
  $('export').addEventListener('submit', function (ev) {
    ev.preventDefault();
    exportOrders();
  });
  $('guides-refresh').addEventListener('click', function () {
    st.attribAt = 0;
    refreshAttribution(st.gen);
  });
  $('new-sale').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var num = function (id) { return Number($(id).value); };
    var at = function (id) { var d = new Date($(id).value); return isNaN(d) ? '' : d.toISOString(); };
    var spec = {
      sale_id: $('ns-sale').value.trim(), store_id: $('ns-store').value.trim(), sku_id: $('ns-sku').value.trim(),
      price: num('ns-price'), quantity: num('ns-qty'), per_user_limit: num('ns-limit'),
      starts_at: at('ns-start'), ends_at: at('ns-end'), hold_seconds: num('ns-hold')
    };
    ask('创建秒杀 ' + spec.sale_id + '？· create flash sale ' + spec.sale_id + '?', function () {
      api('POST', '/admin/v1/flash-sales', spec).then(function (a) {
        if (a.env && a.env.code === 0 && a.env.data) {
          setMsg('已创建 · created ' + spec.sale_id, 'ok');
          setMeta(a.env.data);
          render();
          $('new-sale').reset();
        } else if (!authFailed(a)) {
          setMsg('创建失败 · cannot create ' + spec.sale_id + ': ' + errText(a), 'err');
        }
      }, function () { setMsg('创建失败 · cannot reach the server', 'err'); });
    });
  });
  $('sales').addEventListener('click', function (ev) {
    var b = ev.target.closest('button[data-act]');
    if (!b || b.disabled) return;
    var card = b.closest('.card'), kind = card.dataset.kind, id = card.dataset.id, act = b.dataset.act;
    var what = (kind === 'group' ? '拼团 ' : '闪购 ') + id;
    var warn = act === 'end' ? '（结束后不能恢复 · an ended sale cannot be resumed）' : '';
    ask('确定' + ACT_ZH[act] + ' ' + what + '？' + warn + ' · ' + act + ' ' + kind + ' ' + id + '?', function () {
      control(kind, id, act);
    });
  });
  $('dlg-ok').addEventListener('click', function () { answer(true); });
  $('dlg-cancel').addEventListener('click', function () { answer(false); });
  $('dlg').addEventListener('click', function (ev) { if (ev.target === $('dlg')) answer(false); });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Escape' && !$('dlg').hidden) answer(false);
  });
  setInterval(tick, 1000);

  var saved = storage(function (s) { return s.getItem(TOKEN_KEY); });
  if (saved) login(saved);
  else $('token').focus();
})();
