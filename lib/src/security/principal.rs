//! Principals: who a connection is, as Kafka names it ("User:alice"), and
//! Kafka's `ssl.principal.mapping.rules` that turn a client certificate's
//! distinguished name into a user name.

use regex::Regex;

/// What a connection without credentials is (PLAINTEXT, or SSL without a
/// client certificate), as in Kafka.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

pub fn user(name: &str) -> String {
    format!("User:{name}")
}

#[derive(Clone, Debug)]
enum Rule {
    Default,
    Replace { pattern: Regex, replacement: String, case: Option<char> },
}

/// Kafka's ssl.principal.mapping.rules: "RULE:pattern/replacement/[LU]"
/// entries and "DEFAULT" (the whole DN), separated by commas; the first
/// rule whose pattern matches the whole DN decides.
#[derive(Clone, Debug)]
pub struct MappingRules(Vec<Rule>);

impl Default for MappingRules {
    fn default() -> Self {
        MappingRules(vec![Rule::Default])
    }
}

impl MappingRules {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = vec![];
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after).ok_or_else(|| format!("rule {rest:?}: expected RULE:pattern/replacement/"))?;
                let (replacement, after) = until_slash(after).ok_or_else(|| format!("rule {rest:?}: expected RULE:pattern/replacement/"))?;
                let (case, after) = match after.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                    _ => (None, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("rule pattern {pattern:?}: {e}"))?;
                // Java's "$1" is the regex crate's "${1}".
                let replacement = Regex::new(r"\$(\d+)").unwrap().replace_all(&replacement, "$${$1}").into_owned();
                rules.push(Rule::Replace { pattern, replacement, case });
                rest = after;
            } else {
                return Err(format!("ssl.principal.mapping.rules: unexpected {rest:?} (expected RULE:... or DEFAULT)"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("ssl.principal.mapping.rules: expected ',' before {rest:?}")),
            }
        }
        if rules.is_empty() {
            return Err("ssl.principal.mapping.rules is empty".into());
        }
        Ok(MappingRules(rules))
    }

    /// The user name for a certificate's DN, or an error if no rule applies.
    pub fn apply(&self, dn: &str) -> Result<String, String> {
        for rule in &self.0 {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Replace { pattern, replacement, case } if pattern.is_match(dn) => {
                    let name = pattern.replace(dn, replacement.as_str()).into_owned();
                    return Ok(match case {
                        Some('L') => name.to_lowercase(),
                        Some('U') => name.to_uppercase(),
                        _ => name,
                    });
                }
                Rule::Replace { .. } => {}
            }
        }
        Err(format!("no ssl.principal.mapping.rules rule applies to {dn:?}"))
    }
}

/// Text up to the first '/' not escaped by '\\', unescaped, and what follows it.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_documentation_examples() {
        let r = MappingRules::parse("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT").unwrap();
        assert_eq!(r.apply("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown").unwrap(), "serviceuser");
        assert_eq!(r.apply("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown").unwrap(), "adminuser@admin");
        assert_eq!(r.apply("CN=Chronik.Node,O=x").unwrap(), "chronik.node");
        assert_eq!(r.apply("O=nothing").unwrap(), "O=nothing");
    }

    #[test]
    fn no_matching_rule_is_an_error_and_escapes_work() {
        let r = MappingRules::parse("RULE:^CN=([^,]*)\\/x$/$1/U").unwrap();
        assert_eq!(r.apply("CN=bob/x").unwrap(), "BOB");
        assert!(r.apply("CN=bob").is_err());
        assert!(MappingRules::parse("RULE:abc").is_err());
        assert!(MappingRules::parse("nonsense").is_err());
        assert_eq!(MappingRules::default().apply("CN=a,O=b").unwrap(), "CN=a,O=b");
    }
}
