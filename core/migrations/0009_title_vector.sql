-- Relevance without ranking every match: searchIssues by relevance lists the issues whose
-- title matches the words, then those that match in the body alone, each most recently
-- updated first. Each tier is a walk of issues_updated that stops after a page (or, for a
-- rare word, the GIN index), so a page costs the same whatever the word's frequency; the
-- title's own vector gives the planner statistics on how often a word is in titles.
ALTER TABLE issues ADD COLUMN IF NOT EXISTS title_vector tsvector GENERATED ALWAYS AS (
    to_tsvector('english'::regconfig, title)
) STORED;

-- The planner's statistics of the new column now, not when autovacuum next comes by: until
-- then it cannot tell a common word of titles from a rare one, and a relevance page of a
-- common word was measured at ten times its cost.
ANALYZE issues;
