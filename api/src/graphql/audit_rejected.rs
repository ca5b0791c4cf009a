//! Mutation attempts that never reach a resolver (unparsable, or refused by validation: an
//! unknown field, a wrong enum value, a missing argument, too deep, too complex) are audited
//! here, so that every mutation attempt leaves an audit event, as the resolvers' ones do.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};
use cellar_core::audit::{self, NewEvent, Outcome};
use serde_json::json;

use crate::service::{Caller, Services};

/// Installs [`AuditRejectedMutations`] per request.
pub struct AuditRejected;

impl ExtensionFactory for AuditRejected {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AuditRejectedMutations(Mutex::new(None)))
    }
}

/// Remembers the mutation a document asks for, and audits it if validation refuses it.
struct AuditRejectedMutations(Mutex<Option<String>>);

/// The first field of the document's first mutation, e.g. `createBackup`.
fn mutation_field(doc: &ExecutableDocument) -> Option<String> {
    let op = doc
        .operations
        .iter()
        .find(|(_, op)| op.node.ty == OperationType::Mutation)?;
    let first = op.1.node.selection_set.node.items.first();
    Some(match first.map(|s| &s.node) {
        Some(Selection::Field(f)) => f.node.name.node.to_string(),
        _ => "mutation".to_string(),
    })
}

async fn record(ctx: &ExtensionContext<'_>, action: &str, errors: &[ServerError]) {
    let (Some(services), caller) = (ctx.data_opt::<Services>(), ctx.data_opt::<Caller>()) else {
        return;
    };
    let first = errors
        .first()
        .map(|e| e.message.as_str())
        .unwrap_or_default();
    let event = NewEvent {
        principal: caller.and_then(|c| c.principal.as_ref()),
        action,
        target: None,
        job_id: None,
        arguments: json!({ "rejected": first.chars().take(200).collect::<String>() }),
        outcome: Outcome::Failed,
        error_code: Some("INVALID_INPUT"),
        client_addr: caller.and_then(|c| c.addr.clone()),
    };
    if let Err(e) = audit::record(&services.pool, &event).await {
        tracing::error!(error = %e, action, "AUDIT EVENT NOT RECORDED for a rejected mutation");
    }
}

#[async_trait::async_trait]
impl Extension for AuditRejectedMutations {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let parsed = next.run(ctx, query, variables).await;
        match &parsed {
            Ok(doc) => *self.0.lock().expect("lock") = mutation_field(doc),
            Err(e) if query.trim_start().starts_with("mutation") => {
                record(ctx, "unparsableMutation", std::slice::from_ref(e)).await
            }
            Err(_) => {}
        }
        parsed
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        if let Err(errors) = &result {
            let field = self.0.lock().expect("lock").take();
            if let Some(field) = field {
                record(ctx, &field, errors).await;
            }
        }
        result
    }
}
