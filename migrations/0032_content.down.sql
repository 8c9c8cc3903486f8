-- Reverts 0032_content.
DELETE FROM queue.jobs WHERE kind = 'content.publish';
DROP TABLE content_versions, content_redirects, content;
DROP FUNCTION app.content_changed(), app.prepare_content(), app.may_publish_content(), app.public_org(),
    app.seo_meta_valid(jsonb), app.slugify(text);
