// Sign-in with a person's account in the deployment's Cognito user pool. The deployment names the pool and the
// console's app client in config.json beside index.html; without them (locally) the console offers the key form only.
// The password goes to Cognito (USER_PASSWORD_AUTH, over TLS), never to Kairos; the API gets Cognito's ID token.
import { signIn } from "./api.js";
import { alertError, announce } from "./ui.js";

export async function accountConfig() {
  try {
    const resp = await fetch("config.json", { cache: "no-cache" });
    if (!resp.ok) return null;
    // {"auth": {"userPoolId": "eu-west-1_AbC123", "clientId": "..."}}: the region is the pool id's prefix.
    const auth = ((await resp.json()) || {}).auth || {};
    const m = /^([a-z]{2}(?:-[a-z]+)+-\d+)_[0-9A-Za-z]+$/.exec(auth.userPoolId || "");
    return m && auth.clientId ? { region: m[1], clientId: auth.clientId } : null;
  } catch {
    return null;
  }
}

async function cognito(region, action, body) {
  const resp = await fetch(`https://cognito-idp.${region}.amazonaws.com/`, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": `AWSCognitoIdentityProviderService.${action}`,
    },
    body: JSON.stringify(body),
  });
  const doc = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(doc.message || doc.__type || `HTTP ${resp.status}`);
  return doc;
}

// What Cognito may ask before it signs a person in: a new password after an administrator created the account,
// or the code of the authenticator app of a person who turned MFA on.
const CHALLENGES = {
  NEW_PASSWORD_REQUIRED: { label: "New password", type: "password", autocomplete: "new-password", key: "NEW_PASSWORD" },
  SOFTWARE_TOKEN_MFA: {
    label: "Code from your authenticator app",
    type: "text",
    autocomplete: "one-time-code",
    key: "SOFTWARE_TOKEN_MFA_CODE",
  },
};

export function setUpAccountSignIn(pool, onSignedIn) {
  const form = document.getElementById("user-sign-in-form");
  const email = document.getElementById("user-email");
  const password = document.getElementById("user-password");
  const challenge = document.getElementById("user-challenge");
  const answer = document.getElementById("user-answer");
  let pending = null; // the challenge Cognito asked for: {name, session, username}
  form.hidden = false;

  function reset() {
    pending = null;
    challenge.hidden = true;
    answer.required = false;
    answer.value = "";
    password.value = "";
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    alertError(null);
    try {
      const r = pending
        ? await cognito(pool.region, "RespondToAuthChallenge", {
            ClientId: pool.clientId,
            ChallengeName: pending.name,
            Session: pending.session,
            ChallengeResponses: { USERNAME: pending.username, [CHALLENGES[pending.name].key]: answer.value },
          })
        : await cognito(pool.region, "InitiateAuth", {
            AuthFlow: "USER_PASSWORD_AUTH",
            ClientId: pool.clientId,
            AuthParameters: { USERNAME: email.value.trim(), PASSWORD: password.value },
          });
      if (r.AuthenticationResult) {
        reset();
        signIn(r.AuthenticationResult.IdToken);
        onSignedIn();
        return;
      }
      const asked = CHALLENGES[r.ChallengeName];
      if (!asked) throw new Error(`sign-in needs ${r.ChallengeName}, which the console does not offer`);
      const params = r.ChallengeParameters || {};
      pending = { name: r.ChallengeName, session: r.Session, username: params.USER_ID_FOR_SRP || email.value.trim() };
      document.getElementById("user-answer-label").textContent = asked.label;
      answer.type = asked.type;
      answer.autocomplete = asked.autocomplete;
      answer.value = "";
      answer.required = true;
      challenge.hidden = false;
      answer.focus();
      announce(`${asked.label} needed to sign in`);
    } catch (err) {
      reset();
      alertError(err);
    }
  });
}
