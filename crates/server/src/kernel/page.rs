//! Cursor pagination, the same for every list: ids are UUIDv7 (time-ordered), so the cursor is
//! the last id of the page and the next page starts after it.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Items per page: 1 to 200. Anything else is refused (400), not quietly clamped: a client
/// asking for 10,000 should learn it gets 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Limit(u32);

impl Limit {
    pub const MAX: u32 = 200;
    pub const DEFAULT: Limit = Limit(50);

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Limit {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, String> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Limit(n))
        } else {
            Err(format!("limit must be 1 to {}", Self::MAX))
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

impl PageParams {
    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(Limit::DEFAULT).get()) + 1
    }

    /// The lower bound for ids (exclusive); the nil UUID before the first page.
    pub fn after(&self) -> Uuid {
        self.after.unwrap_or(Uuid::nil())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with [`PageParams::fetch_limit`], ordered by id.
    pub fn from_rows(mut rows: Vec<T>, params: &PageParams, id: impl Fn(&T) -> Uuid) -> Self {
        let page_size = (params.fetch_limit() - 1) as usize;
        let next_cursor = if rows.len() > page_size {
            rows.truncate(page_size);
            rows.last().map(&id)
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// A page of a list sorted by something other than id: the cursor carries the sort's name, the
/// last item's sort key (as PostgreSQL prints it, so it casts back exactly) and its id.
#[derive(Debug, Serialize, ToSchema)]
pub struct SortedPage<T> {
    pub items: Vec<T>,
    /// Pass as `after` (with the same `sort`) to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Where a sorted page starts: after the item with this sort key and id.
#[derive(Debug, Clone, PartialEq)]
pub struct SortCursor {
    pub sort: String,
    pub key: String,
    pub id: Uuid,
}

impl SortCursor {
    pub fn encode(&self) -> String {
        use base64::Engine;
        let json = serde_json::json!([self.sort, self.key, self.id]).to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// The cursor in `text`, which must have been made for `sort`; anything else is a 400.
    pub fn decode(text: &str, sort: &str) -> Result<Self, crate::kernel::error::Error> {
        use base64::Engine;
        let refused = || {
            crate::kernel::error::Error::BadRequest(format!(
                "after: not a cursor of this list sorted by {sort}"
            ))
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| refused())?;
        let (made_for, key, id): (String, String, Uuid) =
            serde_json::from_slice(&bytes).map_err(|_| refused())?;
        if made_for != sort {
            return Err(refused());
        }
        Ok(Self {
            sort: made_for,
            key,
            id,
        })
    }
}

/// A row of a sorted list: the item's own columns and its sort key (`… AS sort_key`, as text).
pub struct Sorted<T> {
    pub item: T,
    pub sort_key: String,
}

impl<'r, T: sqlx::FromRow<'r, sqlx::postgres::PgRow>> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    for Sorted<T>
{
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok(Self {
            item: T::from_row(row)?,
            sort_key: row.try_get("sort_key")?,
        })
    }
}

impl<T> SortedPage<T> {
    /// Builds a page from rows fetched one past `limit`, in order of `sort`.
    pub fn from_rows(
        mut rows: Vec<Sorted<T>>,
        limit: Limit,
        sort: &str,
        id: impl Fn(&T) -> Uuid,
    ) -> Self {
        let size = limit.get() as usize;
        let next_cursor = if rows.len() > size {
            rows.truncate(size);
            rows.last().map(|last| {
                SortCursor {
                    sort: sort.to_string(),
                    key: last.sort_key.clone(),
                    id: id(&last.item),
                }
                .encode()
            })
        } else {
            None
        };
        Self {
            items: rows.into_iter().map(|row| row.item).collect(),
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_comes_back_only_for_its_own_sort() {
        let cursor = SortCursor {
            sort: "name".into(),
            key: "Ada \"Lovelace\", 1815".into(),
            id: Uuid::now_v7(),
        };
        let text = cursor.encode();
        assert_eq!(SortCursor::decode(&text, "name").ok(), Some(cursor));
        assert!(SortCursor::decode(&text, "-created").is_err());
        assert!(SortCursor::decode("not base64!", "name").is_err());
        assert!(
            SortCursor::decode("W10", "name").is_err(),
            "[] is not a cursor"
        );
    }

    #[test]
    fn a_full_page_says_where_the_next_starts() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let rows = || {
            ids.iter()
                .map(|id| Sorted {
                    item: *id,
                    sort_key: id.to_string(),
                })
                .collect()
        };
        let page = SortedPage::from_rows(rows(), Limit(2), "name", |id| *id);
        assert_eq!(page.items, ids[..2]);
        let next = SortCursor::decode(page.next_cursor.as_deref().unwrap_or(""), "name");
        assert_eq!(
            next.map(|c| (c.id, c.key)).ok(),
            Some((ids[1], ids[1].to_string()))
        );
        let last = SortedPage::from_rows(rows(), Limit(3), "name", |id| *id);
        assert_eq!(last.next_cursor, None);
    }
}
