-- Reverts 0014_sign_in_attempts.
DROP FUNCTION app.begin_sign_in_attempt(text, inet);
