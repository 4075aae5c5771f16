/*
 * wikifarm: show a new owner the secret of the site they just claimed, once.
 * The friends security client claims with POST /login and keeps only the owner's name; the
 * secret in the answer is the one way to log in again from another browser, so this script
 * watches for that answer and puts the secret in front of the person who claimed.
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
      '<p><input class="secret" readonly size="40"></p><menu><button value="ok" autofocus>I have kept ' +
        'it</button></menu></form>'
    dialog.querySelector('.owner').textContent = ownerName
    dialog.querySelector('.secret').value = secret
    document.body.appendChild(dialog)
    if (typeof dialog.showModal === 'function') dialog.showModal()
    else dialog.setAttribute('open', '')
    dialog.querySelector('.secret').select()
  }

  window.fetch = function (resource, init) {
    var result = original.apply(this, arguments)
    var url = typeof resource === 'string' ? resource : (resource && resource.url) || ''
    var method = ((init && init.method) || (resource && resource.method) || 'GET').toUpperCase()
    var path = url.indexOf(window.location.origin) === 0 ? url.slice(window.location.origin.length) : url
    if (method === 'POST' && path === '/login') {
      result.then(function (response) {
        if (!response.ok) return
        response.clone().json().then(function (body) {
          if (body && typeof body.secret === 'string') show(String(body.ownerName || ''), body.secret)
        }, function () {})
      }, function () {})
    }
    return result
  }
})()
