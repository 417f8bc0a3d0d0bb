//! Workspace chooser and member list.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::repo;
use crate::{
    auth::{extract::MaybeUser, MaybeUserExt as _},
    db,
    error::AppResult,
    web::{layout::Layout, render, AppState},
};

pub struct WorkspaceView {
    pub slug: String,
    pub name: String,
    pub role: String,
}

#[derive(Template)]
#[template(path = "tenants/chooser_partial.html")]
pub struct ChooserPartial {
    pub workspaces: Vec<WorkspaceView>,
}

/// `/`: anonymous visitors go to sign-in; members of one workspace go straight to it.
pub async fn home(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: MaybeUser,
) -> AppResult<HttpResponse> {
    let Some(u) = user.0.clone() else {
        return Ok(render::see_other(&req, "/login"));
    };
    let uid = u.id;
    let list = db::run(&state.pool, move |c| repo::for_user(c, uid)).await?;
    if list.len() == 1 {
        return Ok(render::see_other(&req, &format!("/t/{}", list[0].slug)));
    }
    let workspaces = list
        .into_iter()
        .map(|t| WorkspaceView {
            slug: t.slug,
            name: t.name,
            role: t.role,
        })
        .collect();
    let layout = Layout::for_request(&req, "Your workspaces").maybe_user(&user);
    render::page(&req, layout, ChooserPartial { workspaces })
}
