/*
 * wikifarm: the farm administrator's login, on /system/status.html. The admin secret is sent
 * as the friends security client sends an owner's (POST /auth/reclaim/, the secret as text);
 * on success the status page loads, on a refusal the form says why.
 */
(function () {
  'use strict'
  var form = document.getElementById('admin-login')
  if (!form) return
  var input = form.querySelector('input[name=secret]')
  var note = form.querySelector('.error')
  form.addEventListener('submit', function (event) {
    event.preventDefault()
    note.textContent = ''
    fetch('/auth/reclaim/', {
      method: 'POST', cache: 'no-cache', mode: 'same-origin', credentials: 'include',
      headers: { 'content-type': 'text/plain; charset=utf-8' }, body: input.value,
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body } }, function () {
        return { ok: false, body: { error: 'The farm answered ' + response.status } }
      })
    }).then(function (answer) {
      if (answer.ok && answer.body && answer.body.admin === true) {
        window.location.reload()
        return
      }
      input.value = ''
      input.focus()
      note.textContent = answer.ok
        ? 'That is this site\'s owner secret, not the farm administrator\'s.'
        : (answer.body && answer.body.error) || 'The secret was refused.'
    }, function () {
      note.textContent = 'The farm could not be reached.'
    })
  })
})()
