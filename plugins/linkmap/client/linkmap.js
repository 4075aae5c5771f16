/*
 * wikifarm Linkmap item: the live map of which page of this wiki links to which.
 * It speaks the wikifarm.v1 convention to the built-in linkmap plugin (docs/linkmap.md):
 * the whole map on connect, then one update per changed page, so an edit in another tab
 * shows here within a moment. Like every federated-wiki client plugin it defines
 * window.plugins.linkmap = {emit, bind}; it also exports its pure parts for tests.
 */
(function () {
  'use strict'

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';' })
  }

  /** Applies one server message to a map; returns the new map (the old one is not changed). */
  function applyMessage(map, message) {
    if (!message || typeof message !== 'object') return map
    if (message.type === 'map' && message.data && typeof message.data === 'object')
      return Object.assign({}, message.data)
    if (message.type === 'update' && message.data && typeof message.data.slug === 'string') {
      var next = Object.assign({}, map)
      if (message.data.links === null) delete next[message.data.slug]
      else if (Array.isArray(message.data.links)) next[message.data.slug] = message.data.links.slice()
      return next
    }
    return map
  }

  function stats(map) {
    var pages = Object.keys(map)
    var links = 0
    for (var i = 0; i < pages.length; i++) links += map[pages[i]].length
    return pages.length + ' pages, ' + links + ' links'
  }

  /** The map as an HTML list: each page, then the pages it links to (missing ones marked). */
  function render(map) {
    var slugs = Object.keys(map).sort()
    var rows = slugs.map(function (slug) {
      var targets = map[slug].map(function (target) {
        var cls = Object.prototype.hasOwnProperty.call(map, target) ? 'internal' : 'internal ghost'
        return (
          '<a class="' +
          cls +
          '" href="/' +
          escapeHtml(target) +
          '.html" data-page-name="' +
          escapeHtml(target) +
          '">' +
          escapeHtml(target) +
          '</a>'
        )
      })
      return (
        '<li data-slug="' +
        escapeHtml(slug) +
        '"><a class="internal" href="/' +
        escapeHtml(slug) +
        '.html" data-page-name="' +
        escapeHtml(slug) +
        '">' +
        escapeHtml(slug) +
        '</a>' +
        (targets.length ? ' → ' + targets.join(', ') : '') +
        '</li>'
      )
    })
    return '<ul class="linkmap-list" style="margin:0;padding-left:1.2em">' + rows.join('') + '</ul>'
  }

  function socketUrl(host) {
    var scheme = window.location.protocol === 'https:' ? 'wss://' : 'ws://'
    return scheme + host + '/plugin/linkmap'
  }

  function emit($item, item) {
    $item.css({ 'background-color': '#eee', padding: '0.6em' })
    $item.append('<p class="linkmap-caption">Linkmap connecting…</p><div class="linkmap-body"></div>')
    if (item.text) $item.append('<p class="linkmap-text" style="color:gray">' + escapeHtml(item.text) + '</p>')
  }

  function bind($item, item) {
    var $page = $item.parents('.page:first')
    var host = $page.data('site') || window.location.host
    if (host === 'origin' || host === 'local') host = window.location.host
    var map = {}
    var updates = 0
    var socket = new WebSocket(socketUrl(host), 'wikifarm.v1')
    var caption = function (text) { $item.find('.linkmap-caption').text('Linkmap ' + text) }
    var redraw = function () {
      $item.find('.linkmap-body').html(render(map))
      caption(stats(map) + (updates ? ', ' + updates + ' live updates' : ''))
      $item.attr('data-linkmap-updates', String(updates))
    }
    // The client has no unbind hook: a socket whose item left the page closes itself.
    var attached = function () { return $.contains(document.documentElement, $item[0]) }
    socket.onmessage = function (event) {
      if (!attached()) return socket.close(1000, 'item removed')
      var message
      try { message = JSON.parse(event.data) } catch (err) { return }
      if (message.type === 'update') updates++
      if (message.type === 'error')
        return caption('error: ' + (message.data && message.data.message ? message.data.message : 'unknown'))
      map = applyMessage(map, message)
      redraw()
    }
    socket.onclose = function (event) {
      caption('closed' + (event.reason ? ': ' + event.reason : '') + ' (' + event.code + ')')
    }
    socket.onerror = function () { caption('cannot connect to ' + host) }
    $item.on('dblclick', function () {
      socket.close(1000, 'editing')
      wiki.textEditor($item, item)
    })
  }

  if (typeof window !== 'undefined' && window.plugins) window.plugins.linkmap = { emit: emit, bind: bind }
  /* global module -- the CommonJS export is for the tests, which require this file */
  if (typeof module !== 'undefined' && module.exports)
    module.exports = { applyMessage: applyMessage, render: render, stats: stats }
})()
