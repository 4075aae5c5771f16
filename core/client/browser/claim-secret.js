/*
 * wikifarm: the owner's flow in the browser, around the friends security client (which this
 * farm serves unchanged from wiki-security-friends):
 * - show a new owner the secret of the site they just claimed, once: the client keeps only the
 *   owner's name, and the secret in POST /login's answer is the one way to log in again;
 * - a refused secret (POST /auth/reclaim/) is said in the reclaim dialog, which opens again,
 *   instead of only in the console;
 * - after a claim or a login the pages become editable in place, and after a logout read-only:
 *   wiki-client decides that once, at load (its footer toggle, .editEnable), so it is flipped
 *   here and the pages rebuilt, as that toggle does.
 */
(function () {
  'use strict'
  var original = window.fetch
  if (typeof original !== 'function') return

  function show(ownerName, secret) {
    var dialog = document.createElement('dialog')
    dialog.id = 'wikifarm-secret'
    dialog.innerHTML =
      '<form method="dialog"><h1>This wiki is yours</h1>' +
      '<p>You are its owner, <b class="owner"></b>. Keep this secret: it is the only way to log in again ' +
      'from another browser, or after you log out. It is not shown again.</p>' +
      '<p><input class="secret" readonly size="66" spellcheck="false" style="font-family:monospace;max-width:100%">' +
      '</p><menu><button value="ok" autofocus>I have kept it</button></menu></form>'
    dialog.querySelector('.owner').textContent = ownerName
    dialog.querySelector('.secret').value = secret
    document.body.appendChild(dialog)
    if (typeof dialog.showModal === 'function') dialog.showModal()
    else dialog.setAttribute('open', '')
    dialog.querySelector('.secret').select()
  }

  /** Turns wiki-client's edit toggle to `on`, rebuilding the pages, unless it already is. */
  function setEditable(on) {
    var $ = window.jQuery
    if (typeof $ !== 'function') return
    var mark = $('.editEnable')
    if (mark.length === 0 || mark.is(':visible') === on) return
    mark.parent().trigger('click')
  }

  function refused(response) {
    response.clone().json().then(function (body) {
      return body && typeof body.error === 'string' ? body.error : null
    }, function () { return null }).then(function (message) {
      var dialog = document.getElementById('reclaim')
      var input = dialog && dialog.querySelector('#reclaimcode')
      if (!dialog || !input) return
      var note = dialog.querySelector('.wikifarm-error')
      if (!note) {
        note = document.createElement('p')
        note.className = 'wikifarm-error'
        note.setAttribute('role', 'alert')
        note.style.color = '#b00020'
        input.parentNode.insertBefore(note, input.nextSibling)
      }
      note.textContent = message || 'The secret was refused (' + response.status + ').'
      input.value = ''
      if (!dialog.open && typeof dialog.showModal === 'function') dialog.showModal()
      input.focus()
    })
  }

  function clearRefusal() {
    var note = document.querySelector('#reclaim .wikifarm-error')
    if (note) note.parentNode.removeChild(note)
  }

  window.fetch = function (resource, init) {
    var result = original.apply(this, arguments)
    var url = typeof resource === 'string' ? resource : (resource && resource.url) || ''
    var method = ((init && init.method) || (resource && resource.method) || 'GET').toUpperCase()
    var path = url.indexOf(window.location.origin) === 0 ? url.slice(window.location.origin.length) : url
    if (method === 'POST' && path === '/login') {
      result.then(function (response) {
        if (!response.ok) return
        // The security client marks the claim authenticated but not owned: edits would go to
        // the browser's local storage until a reload.
        window.isOwner = true
        setEditable(true)
        response.clone().json().then(function (body) {
          if (body && typeof body.secret === 'string') show(String(body.ownerName || ''), body.secret)
        }, function () {})
      }, function () {})
    } else if (method === 'POST' && path === '/auth/reclaim/') {
      result.then(function (response) {
        if (!response.ok) return refused(response)
        clearRefusal()
        setEditable(true)
      }, function () {})
    } else if (path === '/logout') {
      result.then(function (response) {
        if (!response.ok) return
        window.isOwner = false
        setEditable(false)
      }, function () {})
    }
    return result
  }
})()
