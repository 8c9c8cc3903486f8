DROP FUNCTION app.require_module(text);
