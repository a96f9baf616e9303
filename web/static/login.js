// The login page: posts the name and password to /api/session, which sets the session
// cookie, then goes to the map. Failures are shown as the server words them.

const $ = (id) => document.getElementById(id);

function showError(message) {
  const node = $('gw-login-error');
  node.textContent = message;
  node.hidden = !message;
}

async function logIn(event) {
  event.preventDefault();
  const button = $('gw-login-submit');
  button.disabled = true;
  showError('');
  try {
    const response = await fetch('/api/session', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ name: $('gw-login-name').value, password: $('gw-login-password').value }),
    });
    if (response.ok) {
      window.location.replace(returnTo(new URLSearchParams(window.location.search).get('next')));
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 401) {
      showError('用户名或密码错误 (wrong name or password)');
    } else if (response.status === 429) {
      showError(`登录失败次数过多，请 ${body.retry_after || ''} 秒后再试 (too many failed logins)`);
    } else {
      showError(`登录失败 (${body.error || `HTTP ${response.status}`})`);
    }
  } catch (error) {
    showError(`无法连接服务器 (${error.message})`);
  } finally {
    button.disabled = false;
  }
}

$('gw-login-form').addEventListener('submit', logIn);
window.gridwatchLogin = Object.freeze({ ready: true });

// The page that sent the browser here (?next=/wall), on this site only; else the map.
function returnTo(next) {
  return typeof next === 'string' && /^\/(?![\/\\])/.test(next) ? next : '/';
}
