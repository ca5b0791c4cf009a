//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, without channel binding (the
//! data connections, like every sqlx connection Cellar makes, run without TLS).
//!
//! ```text
//! client-first  = "n,," "n=,r=" client-nonce            (PostgreSQL takes the user from startup)
//! server-first  = "r=" client-nonce server-nonce ",s=" salt ",i=" iterations
//! salted        = Hi(SASLprep(password), salt, iterations)      (PBKDF2-HMAC-SHA-256)
//! proof         = HMAC(salted, "Client Key") XOR HMAC(H(HMAC(salted, "Client Key")), auth-message)
//! client-final  = "c=biws,r=" nonce ",p=" base64(proof)
//! server-final  = "v=" base64(HMAC(HMAC(salted, "Server Key"), auth-message))   (checked)
//! ```

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::WireError;

type HmacSha256 = Hmac<Sha256>;

/// One SCRAM exchange, from the client's first message to the check of the server's signature.
pub(super) struct Scram {
    password: String,
    client_nonce: String,
    client_first_bare: String,
    /// Set by [`Scram::client_final`]: the signature the server must send back.
    expected_server_signature: Option<[u8; 32]>,
}

impl Scram {
    /// Starts an exchange with a random nonce.
    pub(super) fn new(password: &str) -> Self {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        // printable ASCII except ',' (RFC 5802's `printable`)
        let nonce: String = (0..24)
            .map(|_| {
                loop {
                    let c = rng.gen_range(0x21u8..0x7f);
                    if c != b',' {
                        break c as char;
                    }
                }
            })
            .collect();
        Self::with_nonce(password, &nonce)
    }

    fn with_nonce(password: &str, nonce: &str) -> Self {
        // PostgreSQL ignores the SCRAM user name (it uses the startup packet's), as libpq sends.
        let client_first_bare = format!("n=,r={nonce}");
        // Like libpq: SASLprep the password, and use it as it is when it is not valid
        // for SASLprep (the server does the same when it hashes a password).
        let password = stringprep::saslprep(password)
            .map(|p| p.into_owned())
            .unwrap_or_else(|_| password.to_string());
        Self {
            password,
            client_nonce: nonce.to_string(),
            client_first_bare,
            expected_server_signature: None,
        }
    }

    /// The SASLInitialResponse payload.
    pub(super) fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Answers the server's first message with the proof.
    pub(super) fn client_final(&mut self, server_first: &[u8]) -> Result<String, WireError> {
        let bad = |why: &str| WireError::Auth(format!("SCRAM: {why}"));
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| bad("server message is not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(v),
                Some(("i=", v)) => iterations = Some(v),
                _ => {}
            }
        }
        let nonce = nonce.ok_or_else(|| bad("server sent no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(bad("server nonce does not extend the client's"));
        }
        let salt = BASE64_STANDARD
            .decode(salt.ok_or_else(|| bad("server sent no salt"))?)
            .map_err(|_| bad("salt is not base64"))?;
        let iterations: u32 = iterations
            .ok_or_else(|| bad("server sent no iteration count"))?
            .parse()
            .ok()
            .filter(|&i| i >= 1)
            .ok_or_else(|| bad("invalid iteration count"))?;

        let salted = hi(self.password.as_bytes(), &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        Ok(format!(
            "{without_proof},p={}",
            BASE64_STANDARD.encode(proof)
        ))
    }

    /// Checks the server's final message: a server that does not know the password cannot sign.
    pub(super) fn check_server_final(&self, server_final: &[u8]) -> Result<(), WireError> {
        let bad = |why: &str| WireError::Auth(format!("SCRAM: {why}"));
        let text = std::str::from_utf8(server_final).map_err(|_| bad("bad server-final"))?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(bad(&format!("server refused: {e}")));
        }
        let verifier = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or_else(|| bad("server sent no signature"))?;
        let verifier = BASE64_STANDARD
            .decode(verifier)
            .map_err(|_| bad("server signature is not base64"))?;
        match self.expected_server_signature {
            Some(expected) if verifier == expected => Ok(()),
            _ => Err(bad(
                "the server's signature is wrong: it does not know the password",
            )),
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `Hi(str, salt, i)` of RFC 5802: PBKDF2 with HMAC-SHA-256, one block. PostgreSQL's default is
/// 4096 iterations (a few milliseconds), done once per data connection.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let keyed = HmacSha256::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        out.iter_mut().zip(u).for_each(|(o, x)| *o ^= x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil", the RFC's nonces, salt and proof.
    /// (PostgreSQL leaves the user name empty; the example's `n=user` is reproduced by setting it.)
    #[test]
    fn rfc_7677_example() {
        let mut scram = Scram::with_nonce("pencil", "rOprNGfwEbeRWgbNEkqO");
        scram.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        assert_eq!(scram.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = scram.client_final(server_first).unwrap();
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        scram
            .check_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        let forged = scram
            .check_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(
            forged.to_string().contains("signature is wrong"),
            "{forged}"
        );
    }

    #[test]
    fn a_server_that_does_not_extend_the_nonce_is_refused() {
        let mut scram = Scram::with_nonce("pw", "abc");
        for msg in [
            &b"r=abc,s=AAAA,i=4096"[..],
            b"r=xyzabc1,s=AAAA,i=4096",
            b"s=AAAA,i=1",
        ] {
            let err = scram.client_final(msg).unwrap_err();
            assert!(err.to_string().contains("nonce"), "{err}");
        }
        let err = scram.client_final(b"r=abc1,s=AAAA,i=0").unwrap_err();
        assert!(err.to_string().contains("iteration"), "{err}");
        let err = scram.check_server_final(b"e=invalid-proof").unwrap_err();
        assert!(err.to_string().contains("invalid-proof"), "{err}");
    }

    #[test]
    fn random_nonces_are_printable_without_commas() {
        let a = Scram::new("pw");
        let b = Scram::new("pw");
        assert_ne!(a.client_nonce, b.client_nonce);
        assert!(
            a.client_nonce
                .bytes()
                .all(|c| (0x21..0x7f).contains(&c) && c != b',')
        );
    }
}
