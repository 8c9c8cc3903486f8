-- Reverts 0019_kanban_place.
DROP FUNCTION app.kanban_place(uuid, uuid, text, uuid, uuid, uuid);
DROP FUNCTION app.rank_evenly(int);
DROP FUNCTION app.rank_between(text, text);
DROP FUNCTION app.rank_step(int[], boolean);
DROP FUNCTION app.rank_midpoint(int[], int[]);
DROP FUNCTION app.rank_key(int[]);
DROP FUNCTION app.rank_digits(text);
