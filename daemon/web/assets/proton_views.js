// proton_views.js — what belongs to a proton rather than to one
// relationship: creating an invite (text + QR), accepting one, and the
// proton's devices (list, pairing code + QR, joining, revoking).
//
// Every call's error is shown in its view as the API said it, message and
// data.code: a relmd that does not serve device.pair.begin yet answers
// not_implemented, and the view says exactly that.  The views are written
// for the documented result shapes (proto/api.md §4), so they work
// unchanged once those methods are served.

import { call, qr } from './api.js';
import { h, $, until, short, showError } from './ui.js';

let proton = null;
let hooks = { accepted: () => {} };

export function init(h_) {
  hooks = h_;
  $('invite-form').addEventListener('submit', (e) => { e.preventDefault(); createInvite(); });
  $('invite-copy').addEventListener('click', () => copy($('invite-text'), $('invite-copy')));
  $('accept-form').addEventListener('submit', (e) => { e.preventDefault(); accept(); });
  $('pair-begin').addEventListener('click', pairBegin);
  $('join-form').addEventListener('submit', (e) => { e.preventDefault(); join(); });
}

async function copy(textarea, button) {
  try {
    await navigator.clipboard.writeText(textarea.value);
    button.textContent = 'Copied';
  } catch (e) {
    textarea.select();
    button.textContent = 'Selected — copy with Ctrl+C';
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 2500);
}

// ---- invite ----

export function showInvite(p) {
  if (proton !== p) {
    $('invite-result').hidden = true;
    showError($('invite-error'), null);
  }
  proton = p;
}

async function createInvite() {
  const p = proton;
  showError($('invite-error'), null);
  try {
    const r = await call('invite.create', {
      proton: p,
      multi_use: $('invite-multi').checked,
      ttl_s: Number($('invite-ttl').value),
    });
    if (p !== proton) return;
    $('invite-text').value = r.invite;
    $('invite-expiry').textContent = r.expires_at ? until(r.expires_at) : '';
    $('invite-qr').replaceChildren(await qr(r.invite, 'QR code of the invite'));
    $('invite-result').hidden = false;
  } catch (e) {
    showError($('invite-error'), e);
  }
}

// ---- accept ----

export function showAccept(p) {
  if (proton !== p) showError($('accept-error'), null);
  proton = p;
}

async function accept() {
  showError($('accept-error'), null);
  const invite = $('accept-text').value.trim();
  const label = $('accept-label').value.trim();
  try {
    const r = await call('invite.accept', { proton, invite, ...(label ? { label } : {}) });
    $('accept-text').value = '';
    $('accept-label').value = '';
    hooks.accepted(proton, r.relationship);
  } catch (e) {
    showError($('accept-error'), e);
  }
}

// ---- devices ----

export async function showDevices(p) {
  if (proton !== p) {
    $('pair-result').hidden = true;
    showError($('pair-error'), null);
  }
  proton = p;
  await loadDevices();
}

export function onDeviceEvent(ev) {
  if (ev.proton === proton && !$('view-devices').hidden) loadDevices();
}

async function loadDevices() {
  const p = proton;
  showError($('devices-error'), null);
  try {
    const r = await call('device.list', { proton: p });
    if (p !== proton) return;
    $('devices').replaceChildren(...r.devices.map(deviceItem));
  } catch (e) {
    showError($('devices-error'), e);
  }
}

function deviceItem(d) {
  const name = d.label || `device ${short(d.device)}`;
  const li = h('li.device', { dataset: { device: d.device } },
    h('span.device-icon', { 'aria-hidden': 'true' }, d.self ? '●' : '○'),
    h('span.device-label', {}, name),
    d.self && name !== 'this device' ? h('span.pill', {}, 'this device') : null,
    h('span.muted.small', {}, `added in epoch ${d.epoch}`));
  if (!d.self) {
    li.append(h('button.danger.small', {
      type: 'button',
      'aria-label': `Revoke ${name}`,
      onclick: () => revoke(d, name),
    }, 'Revoke'));
  }
  return li;
}

function revoke(d, name) {
  const dlg = $('confirm');
  $('confirm-title').textContent = `Revoke ${name}?`;
  $('confirm-text').textContent = 'It stops receiving this proton\'s messages. Your relationships move on to keys it never had.';
  $('confirm-extra').hidden = false;
  $('confirm-rotate').checked = false;
  dlg.onclose = async () => {
    if (dlg.returnValue !== 'ok') return;
    try {
      const r = await call('device.revoke', {
        proton, device: d.device, ...($('confirm-rotate').checked ? { rotate_identity: true } : {}),
      });
      showError($('devices-error'), null);
      $('devices-error').hidden = true;
      await loadDevices();
      return r;
    } catch (e) {
      showError($('devices-error'), e);
    }
  };
  dlg.showModal();
}

async function pairBegin() {
  const p = proton;
  showError($('pair-error'), null);
  $('pair-result').hidden = true;
  try {
    const r = await call('device.pair.begin', { proton: p });
    if (p !== proton) return;
    $('pair-code').value = r.code;
    $('pair-expiry').textContent = r.expires_at ? until(r.expires_at) : '';
    $('pair-qr').replaceChildren(await qr(r.code, 'QR code of the pairing code'));
    $('pair-result').hidden = false;
  } catch (e) {
    showError($('pair-error'), e);
  }
}

export function showJoin() {
  showError($('join-error'), null);
  $('join-code').focus();
}

// device.pair.join never waits in relmd: while the other device has not
// answered it fails with `pending`, and the same call resumes.  Ask again
// every half second for at most a minute (RELM_PAIR_WAIT_MS).
async function join() {
  showError($('join-error'), null);
  const code = $('join-code').value.trim();
  const label = $('join-label').value.trim();
  const give_up = Date.now() + 60e3;
  $('join-submit').disabled = true;
  try {
    for (;;) {
      try {
        const r = await call('device.pair.join', { code, ...(label ? { label } : {}) });
        $('join-code').value = '';
        hooks.joined(r.proton);
        return;
      } catch (e) {
        if (e.name_ !== 'pending' || Date.now() > give_up) throw e;
        $('join-wait').hidden = false;
        await new Promise((res) => setTimeout(res, 500));
      }
    }
  } catch (e) {
    showError($('join-error'), e);
  } finally {
    $('join-wait').hidden = true;
    $('join-submit').disabled = false;
  }
}
