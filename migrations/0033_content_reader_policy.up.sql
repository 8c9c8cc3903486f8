-- One read policy for content instead of two, so a public page costs one verified-context read.
--
-- 0032 had content_select (members, any status) OR content_public (public readers, published):
-- PostgreSQL evaluates both policies' initplans for every statement (two MAC checks), and an OR
-- of two organizations cannot be an index condition, so a public query had to name the
-- organization itself (a third check). Now one policy says the same:
--   organization_id = the organization the request reads (a member's, or a public reader's)
--   AND (status = 'published' OR the request is a member's);
-- the first part is an index condition, and for a published row the second is true without
-- asking whether the reader is a member (an initplan runs only when its value is needed).

-- The organization whose rows this request may read: as a member (viewer and up) or as a public
-- reader (bound to an organization with no user, API key, calendar feed or service).
CREATE FUNCTION app.reader_org() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    IF app.role_rank(c.org_role) >= app.role_rank('viewer')
       OR (c.user_id IS NULL AND c.api_key_id IS NULL AND c.calendar_of IS NULL AND c.service IS NOT TRUE) THEN
        RETURN c.org_id;
    END IF;
    RETURN NULL;
END $$;
GRANT EXECUTE ON FUNCTION app.reader_org() TO tenantry_runtime;

DROP POLICY content_select ON content;
DROP POLICY content_public ON content;
CREATE POLICY content_select ON content FOR SELECT
    USING (organization_id = (SELECT app.reader_org())
           AND (status = 'published' OR (SELECT app.org_with_role('viewer')) IS NOT NULL));

DROP POLICY content_redirects_select ON content_redirects;
DROP POLICY content_redirects_public ON content_redirects;
-- A public reader follows a redirect only to a page it can read (published).
CREATE POLICY content_redirects_select ON content_redirects FOR SELECT
    USING (organization_id = (SELECT app.reader_org())
           AND ((SELECT app.org_with_role('viewer')) IS NOT NULL
                OR EXISTS (SELECT FROM content c
                            WHERE c.organization_id = content_redirects.organization_id
                              AND c.id = content_redirects.content_id AND c.status = 'published')));

DROP FUNCTION app.public_org();
