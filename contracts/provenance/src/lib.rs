//! Supply-chain traceability shaped like GS1 EPCIS.
//!
//! Registered parties (farms, factories, carriers, labs) commission items
//! identified by EPC-style strings, then record what happened to them:
//! *what* (the items), *when* (block time), *where* (a location such as a
//! GLN), *why* (a business step and a disposition) and *who* (the party).
//! Items can be aggregated into a parent (cases on a pallet), transformed
//! into new items (flour into bread, with lineage), and handed from one
//! custodian to another. Every item keeps a paginated history.
#![cfg_attr(target_arch = "wasm32", no_std)]

use stele_sdk::prelude::*;

/// Longest item identifier.
pub const ID_BYTES_MAX: usize = 128;
/// Longest free text (names, locations, steps).
pub const TEXT_BYTES_MAX: usize = 256;
/// Most children of an aggregation, inputs or outputs of a transformation.
pub const ITEMS_PER_EVENT_MAX: usize = 64;
/// Largest history page.
pub const PAGE_MAX: u32 = 100;

/// A registered party.
#[data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    /// Display name.
    pub name: String,
    /// Role, e.g. "farm", "carrier", "lab".
    pub role: String,
}

/// Where an item stands.
#[data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemStatus {
    /// In circulation.
    Active,
    /// Packed into a parent.
    Aggregated {
        /// The parent.
        parent: String,
    },
    /// Consumed by a transformation.
    Transformed,
}

/// What the registry knows about an item.
#[data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// What it is (a product code or description).
    pub product: String,
    /// Who holds it.
    pub custodian: Address,
    /// Where it stands.
    pub status: ItemStatus,
    /// Items packed into it.
    pub children: Vec<String>,
    /// Items it was made from.
    pub inputs: Vec<String>,
    /// Number of history entries.
    pub n_events: u32,
}

/// EPCIS event types.
#[data]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An item was commissioned or observed.
    Object,
    /// Items were packed into a parent.
    Aggregation,
    /// Items were made into other items.
    Transformation,
    /// Custody changed hands.
    Transaction,
}

/// One history entry: what, when, where, why and who.
#[data]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// The event type.
    pub kind: EventKind,
    /// The items concerned.
    pub what: Vec<String>,
    /// Block time, ms.
    pub when_ms: u64,
    /// Location.
    pub location: String,
    /// Business step, e.g. "commissioning", "shipping", "inspecting".
    pub business_step: String,
    /// Disposition, e.g. "active", "in_transit", "passed".
    pub disposition: String,
    /// The party that recorded it.
    pub who: Address,
}

/// The registry's state.
#[contract]
pub struct Provenance {
    admin: stele_sdk::storage::Item<Address>,
    parties: Map<Address, Party>,
    items: Map<String, Item>,
    /// `(item, sequence number big-endian)` → event.
    history: Map<(String, [u8; 4]), TraceEvent>,
}

/// Something happened to one or more items.
#[event]
pub struct Traced {
    /// The first item concerned.
    #[topic]
    pub item: String,
    /// Who recorded it.
    #[topic]
    pub who: Address,
    /// The business step.
    pub business_step: String,
}

/// Why a registry operation failed.
#[contract_error]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvenanceError {
    /// Only the admin registers parties.
    #[error("only the admin may register parties")]
    NotAdmin,
    /// The caller (or recipient) is not a registered party.
    #[error("not a registered party")]
    NotRegistered,
    /// No item with that identifier.
    #[error("unknown item")]
    UnknownItem,
    /// An item with that identifier exists.
    #[error("the item already exists")]
    ItemExists,
    /// The caller does not hold the item.
    #[error("the caller is not the item's custodian")]
    NotCustodian,
    /// The item was aggregated or transformed.
    #[error("the item is not active")]
    NotActive,
    /// An identifier or text is too long, or a list too long or empty.
    #[error("input over its limit (ids 128 bytes, texts 256, 1 to 64 items)")]
    BadInput,
}

type Result<T> = core::result::Result<T, ProvenanceError>;

#[contract]
impl Provenance {
    /// The deployer becomes the admin.
    #[init]
    pub fn init(&mut self) {
        self.admin.set(&env::caller());
    }

    /// Registers (or renames) a party; admin only.
    pub fn register_party(&mut self, party: Address, name: String, role: String) -> Result<()> {
        if Some(env::caller()) != self.admin.get() {
            return Err(ProvenanceError::NotAdmin);
        }
        check_text(&name)?;
        check_text(&role)?;
        self.parties.insert(&party, &Party { name, role });
        Ok(())
    }

    /// A registered party.
    pub fn party(&self, party: Address) -> Option<Party> {
        self.parties.get(&party)
    }

    /// Commissions a new item held by the caller.
    pub fn commission(&mut self, item_id: String, product: String, location: String) -> Result<()> {
        let who = self.registered_caller()?;
        check_id(&item_id)?;
        check_text(&product)?;
        if self.items.contains_key(&item_id) {
            return Err(ProvenanceError::ItemExists);
        }
        let item = Item {
            product,
            custodian: who,
            status: ItemStatus::Active,
            children: Vec::new(),
            inputs: Vec::new(),
            n_events: 0,
        };
        self.items.insert(&item_id, &item);
        let what = vec![item_id.clone()];
        self.trace(
            &[item_id],
            EventKind::Object,
            what,
            location,
            "commissioning".into(),
            "active".into(),
        )
    }

    /// Records an observation of an item (an inspection, a scan) by any
    /// registered party.
    pub fn record_event(
        &mut self,
        item_id: String,
        location: String,
        business_step: String,
        disposition: String,
    ) -> Result<()> {
        self.registered_caller()?;
        self.item(&item_id)?;
        let what = vec![item_id.clone()];
        self.trace(
            &[item_id],
            EventKind::Object,
            what,
            location,
            business_step,
            disposition,
        )
    }

    /// Packs the caller's active `children` into the caller's active
    /// `parent`.
    pub fn aggregate(
        &mut self,
        parent_id: String,
        children: Vec<String>,
        location: String,
    ) -> Result<()> {
        let who = self.registered_caller()?;
        check_list(&children)?;
        let mut parent = self.held_active(&parent_id, who)?;
        for child_id in &children {
            let mut child = self.held_active(child_id, who)?;
            child.status = ItemStatus::Aggregated {
                parent: parent_id.clone(),
            };
            self.items.insert(child_id, &child);
        }
        parent.children.extend(children.iter().cloned());
        if parent.children.len() > ITEMS_PER_EVENT_MAX {
            return Err(ProvenanceError::BadInput);
        }
        self.items.insert(&parent_id, &parent);
        let mut touched = vec![parent_id];
        touched.extend(children.iter().cloned());
        let what = touched.clone();
        self.trace(
            &touched,
            EventKind::Aggregation,
            what,
            location,
            "packing".into(),
            "active".into(),
        )
    }

    /// Makes the caller's active `inputs` into new `outputs` (id, product),
    /// which record their inputs as lineage.
    pub fn transform(
        &mut self,
        inputs: Vec<String>,
        outputs: Vec<(String, String)>,
        location: String,
    ) -> Result<()> {
        let who = self.registered_caller()?;
        check_list(&inputs)?;
        if outputs.is_empty() || outputs.len() > ITEMS_PER_EVENT_MAX {
            return Err(ProvenanceError::BadInput);
        }
        for input_id in &inputs {
            let mut input = self.held_active(input_id, who)?;
            input.status = ItemStatus::Transformed;
            self.items.insert(input_id, &input);
        }
        let mut touched = inputs.clone();
        for (output_id, product) in &outputs {
            check_id(output_id)?;
            check_text(product)?;
            if self.items.contains_key(output_id) {
                return Err(ProvenanceError::ItemExists);
            }
            let item = Item {
                product: product.clone(),
                custodian: who,
                status: ItemStatus::Active,
                children: Vec::new(),
                inputs: inputs.clone(),
                n_events: 0,
            };
            self.items.insert(output_id, &item);
            touched.push(output_id.clone());
        }
        let what = touched.clone();
        self.trace(
            &touched,
            EventKind::Transformation,
            what,
            location,
            "transforming".into(),
            "active".into(),
        )
    }

    /// Hands the caller's active item (with everything packed into it) to
    /// another registered party.
    pub fn transfer_custody(
        &mut self,
        item_id: String,
        to: Address,
        location: String,
    ) -> Result<()> {
        let who = self.registered_caller()?;
        if !self.parties.contains_key(&to) {
            return Err(ProvenanceError::NotRegistered);
        }
        let mut item = self.held_active(&item_id, who)?;
        item.custodian = to;
        self.items.insert(&item_id, &item);
        let mut touched = vec![item_id];
        for child_id in &item.children {
            let mut child = self.item(child_id)?;
            child.custodian = to;
            self.items.insert(child_id, &child);
            touched.push(child_id.clone());
        }
        let what = touched.clone();
        self.trace(
            &touched,
            EventKind::Transaction,
            what,
            location,
            "shipping".into(),
            "in_transit".into(),
        )
    }

    /// An item.
    pub fn item_info(&self, item_id: String) -> Option<Item> {
        self.items.get(&item_id)
    }

    /// Up to `limit` (at most 100) history entries of an item from entry
    /// `start`, oldest first.
    pub fn history(&self, item_id: String, start: u32, limit: u32) -> Vec<TraceEvent> {
        let limit = limit.min(PAGE_MAX) as usize;
        let start_after = start
            .checked_sub(1)
            .map(|last| (item_id.clone(), last.to_be_bytes()));
        self.history
            .page_prefix(&item_id, start_after.as_ref(), limit)
            .into_iter()
            .map(|(_, event)| event)
            .collect()
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > ID_BYTES_MAX {
        Err(ProvenanceError::BadInput)
    } else {
        Ok(())
    }
}

fn check_text(text: &str) -> Result<()> {
    if text.len() > TEXT_BYTES_MAX {
        Err(ProvenanceError::BadInput)
    } else {
        Ok(())
    }
}

fn check_list(items: &[String]) -> Result<()> {
    if items.is_empty() || items.len() > ITEMS_PER_EVENT_MAX {
        Err(ProvenanceError::BadInput)
    } else {
        Ok(())
    }
}

impl Provenance {
    fn registered_caller(&self) -> Result<Address> {
        let caller = env::caller();
        if self.parties.contains_key(&caller) {
            Ok(caller)
        } else {
            Err(ProvenanceError::NotRegistered)
        }
    }

    fn item(&self, item_id: &String) -> Result<Item> {
        self.items.get(item_id).ok_or(ProvenanceError::UnknownItem)
    }

    fn held_active(&self, item_id: &String, who: Address) -> Result<Item> {
        let item = self.item(item_id)?;
        if item.custodian != who {
            return Err(ProvenanceError::NotCustodian);
        }
        if item.status != ItemStatus::Active {
            return Err(ProvenanceError::NotActive);
        }
        Ok(item)
    }

    /// Appends one event to the history of every touched item.
    fn trace(
        &mut self,
        touched: &[String],
        kind: EventKind,
        what: Vec<String>,
        location: String,
        business_step: String,
        disposition: String,
    ) -> Result<()> {
        check_text(&location)?;
        check_text(&business_step)?;
        check_text(&disposition)?;
        let who = env::caller();
        let event = TraceEvent {
            kind,
            what,
            when_ms: env::block_time_ms(),
            location,
            business_step,
            disposition,
            who,
        };
        for item_id in touched {
            let mut item = self.item(item_id)?;
            self.history
                .insert(&(item_id.clone(), item.n_events.to_be_bytes()), &event);
            item.n_events += 1;
            self.items.insert(item_id, &item);
        }
        env::emit(&Traced {
            item: touched[0].clone(),
            who,
            business_step: event.business_step,
        });
        Ok(())
    }
}
