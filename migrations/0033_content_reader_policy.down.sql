-- Reverts 0033_content_reader_policy.
CREATE FUNCTION app.public_org() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED AS $$
DECLARE
    c app.request_context := app.context();
BEGIN
    IF c.user_id IS NULL AND c.api_key_id IS NULL AND c.calendar_of IS NULL AND c.service IS NOT TRUE THEN
        RETURN c.org_id;
    END IF;
    RETURN NULL;
END $$;
GRANT EXECUTE ON FUNCTION app.public_org() TO tenantry_runtime;

DROP POLICY content_select ON content;
CREATE POLICY content_select ON content FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
CREATE POLICY content_public ON content FOR SELECT
    USING (status = 'published' AND organization_id = (SELECT app.public_org()));

DROP POLICY content_redirects_select ON content_redirects;
CREATE POLICY content_redirects_select ON content_redirects FOR SELECT
    USING (organization_id = (SELECT app.org_with_role('viewer')));
CREATE POLICY content_redirects_public ON content_redirects FOR SELECT
    USING (organization_id = (SELECT app.public_org())
           AND EXISTS (SELECT FROM content c
                        WHERE c.organization_id = content_redirects.organization_id
                          AND c.id = content_redirects.content_id AND c.status = 'published'));

DROP FUNCTION app.reader_org();
