//! The data every full page needs: title, CSRF token, who is signed in and where.

use actix_web::{HttpMessage, HttpRequest};

use super::csrf::CsrfToken;
use crate::auth::{permissions::codes_for, Role};

#[derive(Debug, Clone)]
pub struct NavUser {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct NavTenant {
    pub slug: String,
    pub name: String,
    pub role: String,
    /// Permission codes of the member's role: the UI hides what they cannot do.
    pub perms: Vec<&'static str>,
}

impl NavTenant {
    pub fn can(&self, code: &str) -> bool {
        self.perms.contains(&code)
    }
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub csrf_token: String,
    pub user: Option<NavUser>,
    pub tenant: Option<NavTenant>,
    /// Which navigation entry is current.
    pub nav: &'static str,
}

impl Layout {
    /// A layout without request context (error pages rendered outside a handler).
    pub fn bare(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            csrf_token: String::new(),
            user: None,
            tenant: None,
            nav: "",
        }
    }

    pub fn for_request(req: &HttpRequest, title: impl Into<String>) -> Self {
        let csrf_token = req
            .extensions()
            .get::<CsrfToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        Self {
            title: title.into(),
            csrf_token,
            user: None,
            tenant: None,
            nav: "",
        }
    }

    pub fn with_user(mut self, name: &str, email: &str) -> Self {
        self.user = Some(NavUser {
            name: name.to_owned(),
            email: email.to_owned(),
        });
        self
    }

    pub fn with_tenant(mut self, slug: &str, name: &str, role: Role, nav: &'static str) -> Self {
        self.tenant = Some(NavTenant {
            slug: slug.to_owned(),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            perms: codes_for(role),
        });
        self.nav = nav;
        self
    }

    /// `aria-current` value for a navigation entry.
    pub fn current(&self, key: &str) -> &'static str {
        if self.nav == key {
            "page"
        } else {
            "false"
        }
    }
}
