//! Cursor pagination, the same for every list: ids are UUIDv7 (time-ordered), so the cursor is
//! the last id of the page and the next page starts after it.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub after: Option<Uuid>,
}

impl PageParams {
    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(50).clamp(1, 200)) + 1
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
