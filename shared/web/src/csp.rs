//! Content-Security-Policy: the strict default every response gets (`layers::common`), and the
//! one a page that loads a gateway's tokenization script sends instead: the same directives,
//! with that gateway's origins added where its script needs them and nowhere else.

use app::ports::BrowserTokenizer;

/// Pages allow only our own scripts and styles and may not be framed (clickjacking on a payment
/// form).
pub(crate) const DEFAULT: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The default policy plus the tokenizer's origins in `script-src` and `connect-src`, and a
/// `frame-src` of its frame origins only when it has some (without one, frames fall back to
/// `default-src 'self'`, as in the default). The sandbox's tokenizer gives the default itself.
pub(crate) fn with_tokenizer(tokenizer: &BrowserTokenizer) -> String {
    let mut directives: Vec<String> = DEFAULT
        .split(';')
        .map(str::trim)
        .map(|directive| {
            let name = directive.split(' ').next().unwrap_or_default();
            let extra = match name {
                "script-src" => &tokenizer.script_origins,
                "connect-src" => &tokenizer.connect_origins,
                _ => return directive.to_owned(),
            };
            [directive]
                .iter()
                .chain(extra)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    if !tokenizer.frame_origins.is_empty() {
        let at = directives
            .iter()
            .position(|d| d.starts_with("connect-src"))
            .map_or(directives.len(), |i| i + 1);
        directives.insert(
            at,
            format!("frame-src {}", tokenizer.frame_origins.join(" ")),
        );
    }
    directives.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_gets_the_default_and_a_gateway_its_origins_only_where_needed() {
        assert_eq!(
            DEFAULT,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'"
        );
        assert_eq!(with_tokenizer(&BrowserTokenizer::sandbox()), DEFAULT);
        let stripe = BrowserTokenizer {
            gateway: "stripe",
            vendor_script: Some("https://js.stripe.com/v3/"),
            public: Vec::new(),
            script_origins: vec!["https://js.stripe.com"],
            connect_origins: vec!["https://api.stripe.com"],
            frame_origins: vec!["https://js.stripe.com", "https://hooks.stripe.com"],
        };
        assert_eq!(
            with_tokenizer(&stripe),
            "default-src 'self'; script-src 'self' https://js.stripe.com; style-src 'self'; \
             img-src 'self' data:; connect-src 'self' https://api.stripe.com; \
             frame-src https://js.stripe.com https://hooks.stripe.com; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
        let anet = BrowserTokenizer {
            frame_origins: Vec::new(),
            ..stripe
        };
        assert!(!with_tokenizer(&anet).contains("frame-src"));
    }
}
