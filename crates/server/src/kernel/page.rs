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
