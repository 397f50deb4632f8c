//! The `Cart` aggregate: its state, folded from its events, and one decision per
//! command. Pure: no I/O, no clock. Whether a product exists is asked by the command
//! side (see `command`) before it calls [`decide`](shop_cart::decide).
//!
//! Rules:
//! - A cart that does not exist yet is created by its first `AddProduct`; every other
//!   command on an unknown cart is NOT_FOUND (cart). The client chooses the cart id.
//! - A cart may exist without a customer; `AssignCustomer` sets (or, with no customer,
//!   clears) it. A cart that has a customer is never given to another one (the BFF
//!   claims a cart for the customer who first uses it). Assigning a customer to a new
//!   cart id opens that cart, empty.
//! - Adding a product that is already in the cart INCREASES its quantity (ProductAdded
//!   carries the quantity added, not the new total). The resulting line may not exceed
//!   the spec's maximum (99): FAILED_PRECONDITION, nothing changes.
//! - Removing or changing a product that is not in the cart: NOT_FOUND (cart item).
//! - Commands that would change nothing emit nothing (the version stays): changing a
//!   quantity to its current value, resetting an empty cart, assigning the current
//!   customer, deleting a deleted cart. The last one makes `DeleteCart` safe to repeat.
//! - A deleted cart rejects every other command with FAILED_PRECONDITION: its id is
//!   spent, the client starts a new cart.

use std::collections::BTreeMap;

use keel::ServiceError;
use shop_cart::{
    AddProduct, AssignCustomer, CartAggregate, CartDeleted, CartEvent, CartReset,
    ChangeProductQuantity, CustomerAssigned, DeleteCart, ProductAdded, ProductQuantityChanged,
    ProductRemoved, RemoveProduct, ResetCart,
};
use uuid::Uuid;

/// The spec's bounds of `CartItem.quantity`.
pub const MIN_QUANTITY: i32 = 1;
pub const MAX_QUANTITY: i32 = 99;

/// What the events of one cart stream add up to (kept as JSON in the read model).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cart {
    /// A first `ProductAdded` was recorded.
    pub exists: bool,
    /// A `CartDeleted` was recorded: the stream is closed.
    pub deleted: bool,
    pub customer_id: Option<Uuid>,
    /// Product id to quantity, each within [`MIN_QUANTITY`]..=[`MAX_QUANTITY`].
    pub items: BTreeMap<Uuid, i32>,
}

impl Cart {
    /// Exists and is not deleted: visible to queries, open to commands.
    pub fn is_live(&self) -> bool {
        self.exists && !self.deleted
    }

    fn open(&self, cart_id: Uuid) -> Result<(), ServiceError> {
        if self.deleted {
            return Err(ServiceError::FailedPrecondition(format!(
                "cart {cart_id} has been deleted; use a new cart id"
            )));
        }
        if !self.exists {
            return Err(ServiceError::not_found("cart", cart_id));
        }
        Ok(())
    }

    fn item(&self, cart_id: Uuid, product_id: Uuid) -> Result<i32, ServiceError> {
        self.items
            .get(&product_id)
            .copied()
            .ok_or_else(|| ServiceError::not_found("cart item", format!("{cart_id}/{product_id}")))
    }
}

fn quantity_in_bounds(quantity: i32) -> Result<(), ServiceError> {
    if !(MIN_QUANTITY..=MAX_QUANTITY).contains(&quantity) {
        return Err(ServiceError::invalid(
            "quantity",
            format!("must be between {MIN_QUANTITY} and {MAX_QUANTITY}, got {quantity}"),
        ));
    }
    Ok(())
}

impl CartAggregate for Cart {
    fn apply(&mut self, event: &CartEvent) {
        match event {
            CartEvent::ProductAdded(e) => {
                self.exists = true;
                let line = self.items.entry(e.product_id).or_insert(0);
                *line = line.saturating_add(e.quantity);
            }
            CartEvent::ProductRemoved(e) => {
                self.items.remove(&e.product_id);
            }
            CartEvent::ProductQuantityChanged(e) => {
                self.items.insert(e.product_id, e.quantity);
            }
            CartEvent::CartReset(_) => self.items.clear(),
            CartEvent::CartDeleted(_) => {
                self.deleted = true;
                self.items.clear();
            }
            CartEvent::CustomerAssigned(e) => {
                self.exists = true;
                self.customer_id = e.customer_id;
            }
        }
    }

    fn add_product(&self, command: &AddProduct) -> Result<Vec<CartEvent>, ServiceError> {
        if self.deleted {
            self.open(command.cart_id)?;
        }
        quantity_in_bounds(command.quantity)?;
        let current = self.items.get(&command.product_id).copied().unwrap_or(0);
        let total = current.saturating_add(command.quantity);
        if total > MAX_QUANTITY {
            return Err(ServiceError::FailedPrecondition(format!(
                "cart {} already holds {current} of product {}; adding {} would exceed {MAX_QUANTITY}",
                command.cart_id, command.product_id, command.quantity
            )));
        }
        Ok(vec![CartEvent::ProductAdded(ProductAdded {
            product_id: command.product_id,
            quantity: command.quantity,
        })])
    }

    fn remove_product(&self, command: &RemoveProduct) -> Result<Vec<CartEvent>, ServiceError> {
        self.open(command.cart_id)?;
        self.item(command.cart_id, command.product_id)?;
        Ok(vec![CartEvent::ProductRemoved(ProductRemoved {
            product_id: command.product_id,
        })])
    }

    fn change_product_quantity(
        &self,
        command: &ChangeProductQuantity,
    ) -> Result<Vec<CartEvent>, ServiceError> {
        self.open(command.cart_id)?;
        quantity_in_bounds(command.quantity)?;
        if self.item(command.cart_id, command.product_id)? == command.quantity {
            return Ok(Vec::new());
        }
        Ok(vec![CartEvent::ProductQuantityChanged(
            ProductQuantityChanged {
                product_id: command.product_id,
                quantity: command.quantity,
            },
        )])
    }

    fn reset_cart(&self, command: &ResetCart) -> Result<Vec<CartEvent>, ServiceError> {
        self.open(command.cart_id)?;
        if self.items.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![CartEvent::CartReset(CartReset {})])
    }

    fn delete_cart(&self, command: &DeleteCart) -> Result<Vec<CartEvent>, ServiceError> {
        if self.deleted {
            return Ok(Vec::new());
        }
        self.open(command.cart_id)?;
        Ok(vec![CartEvent::CartDeleted(CartDeleted {})])
    }

    fn view(&self, id: Uuid) -> Option<shop_cart::pb::Cart> {
        self.is_live().then(|| shop_cart::pb::Cart {
            id: id.to_string(),
            customer_id: self.customer_id.map(|c| c.to_string()),
            items: (self.items.iter())
                .map(|(p, q)| shop_cart::pb::CartItem {
                    product_id: p.to_string(),
                    quantity: *q,
                })
                .collect(),
        })
    }

    fn assign_customer(&self, command: &AssignCustomer) -> Result<Vec<CartEvent>, ServiceError> {
        // Claiming a new cart id opens the cart, empty, for that customer.
        if self.deleted || self.exists || command.customer_id.is_none() {
            self.open(command.cart_id)?;
        }
        if self.customer_id == command.customer_id {
            return Ok(Vec::new());
        }
        if self.customer_id.is_some() && command.customer_id.is_some() {
            return Err(ServiceError::FailedPrecondition(
                "the cart belongs to another customer".into(),
            ));
        }
        Ok(vec![CartEvent::CustomerAssigned(CustomerAssigned {
            customer_id: command.customer_id,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use shop_cart::{CartCommand, decide, fold};

    fn cart() -> Uuid {
        Uuid::from_u128(1)
    }

    fn product(n: u128) -> Uuid {
        Uuid::from_u128(100 + n)
    }

    fn add(p: u128, quantity: i32) -> CartCommand {
        CartCommand::AddProduct(AddProduct {
            cart_id: cart(),
            product_id: product(p),
            quantity,
        })
    }

    fn remove(p: u128) -> CartCommand {
        CartCommand::RemoveProduct(RemoveProduct {
            cart_id: cart(),
            product_id: product(p),
        })
    }

    fn change(p: u128, quantity: i32) -> CartCommand {
        CartCommand::ChangeProductQuantity(ChangeProductQuantity {
            cart_id: cart(),
            product_id: product(p),
            quantity,
        })
    }

    fn reset() -> CartCommand {
        CartCommand::ResetCart(ResetCart { cart_id: cart() })
    }

    fn delete() -> CartCommand {
        CartCommand::DeleteCart(DeleteCart { cart_id: cart() })
    }

    fn assign(c: Option<u128>) -> CartCommand {
        CartCommand::AssignCustomer(AssignCustomer {
            cart_id: cart(),
            customer_id: c.map(Uuid::from_u128),
        })
    }

    /// Runs commands in order, keeping the events of the accepted ones.
    fn run(commands: &[CartCommand]) -> (Cart, Vec<CartEvent>) {
        let mut events = Vec::new();
        let mut state = Cart::default();
        for c in commands {
            if let Ok(new) = decide(&state, c) {
                for e in &new {
                    state.apply(e);
                }
                events.extend(new);
            }
        }
        (state, events)
    }

    #[test]
    fn first_add_creates_the_cart() {
        let (state, events) = run(&[add(1, 2)]);
        assert!(state.is_live());
        assert_eq!(
            state.customer_id, None,
            "a cart may exist without a customer"
        );
        assert_eq!(state.items[&product(1)], 2);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn adding_again_increases_the_quantity_up_to_99() {
        let (state, _) = run(&[add(1, 2), add(1, 3)]);
        assert_eq!(state.items[&product(1)], 5);
        let r = decide(&state, &add(1, 95));
        assert!(
            matches!(r, Err(ServiceError::FailedPrecondition(ref m)) if m.contains("exceed 99")),
            "{r:?}"
        );
        assert!(decide(&state, &add(1, 94)).is_ok());
    }

    #[test]
    fn out_of_bounds_quantities_are_invalid() {
        for q in [0, -1, 100] {
            assert!(matches!(
                decide(&Cart::default(), &add(1, q)),
                Err(ServiceError::InvalidArgument(_))
            ));
        }
        let (state, _) = run(&[add(1, 1)]);
        assert!(matches!(
            decide(&state, &change(1, 0)),
            Err(ServiceError::InvalidArgument(_))
        ));
    }

    #[test]
    fn commands_on_an_unknown_cart_are_not_found() {
        for c in [remove(1), change(1, 2), reset(), delete(), assign(None)] {
            let r = decide(&Cart::default(), &c);
            assert!(
                matches!(r, Err(ServiceError::NotFound { ref kind, .. }) if kind == "cart"),
                "{c:?}: {r:?}"
            );
        }
    }

    #[test]
    fn removing_or_changing_an_absent_item_is_not_found() {
        let (state, _) = run(&[add(1, 1)]);
        for c in [remove(2), change(2, 3)] {
            let r = decide(&state, &c);
            assert!(
                matches!(r, Err(ServiceError::NotFound { ref kind, .. }) if kind == "cart item"),
                "{r:?}"
            );
        }
    }

    #[test]
    fn no_op_commands_emit_nothing() {
        let (state, _) = run(&[add(1, 4), assign(Some(9))]);
        assert_eq!(decide(&state, &change(1, 4)).expect("ok"), []);
        assert_eq!(decide(&state, &assign(Some(9))).expect("ok"), []);
        let (empty, _) = run(&[add(1, 4), remove(1)]);
        assert_eq!(decide(&empty, &reset()).expect("ok"), []);
    }

    #[test]
    fn deleted_carts_reject_commands_but_delete_is_repeatable() {
        let (state, events) = run(&[add(1, 4), delete()]);
        assert!(state.deleted && !state.is_live());
        assert_eq!(events.len(), 2);
        assert_eq!(decide(&state, &delete()).expect("no-op"), []);
        for c in [add(2, 1), remove(1), change(1, 2), reset(), assign(Some(3))] {
            assert!(
                matches!(decide(&state, &c), Err(ServiceError::FailedPrecondition(_))),
                "{c:?}"
            );
        }
    }

    #[test]
    fn reset_empties_and_assign_clears() {
        let (state, _) = run(&[add(1, 1), add(2, 2), assign(Some(5)), reset(), assign(None)]);
        assert!(state.is_live());
        assert!(state.items.is_empty());
        assert_eq!(state.customer_id, None);
    }

    #[test]
    fn a_cart_with_a_customer_is_not_given_to_another() {
        let (state, events) = run(&[assign(Some(5)), add(1, 1)]);
        assert_eq!(events.len(), 2, "assigning opens a new cart");
        assert!(matches!(
            decide(&state, &assign(Some(6))),
            Err(ServiceError::FailedPrecondition(_))
        ));
        assert_eq!(decide(&state, &assign(Some(5))), Ok(Vec::new()));
    }

    fn any_command() -> impl Strategy<Value = CartCommand> {
        let p = 0u128..4;
        let q = -1i32..102;
        prop_oneof![
            4 => (p.clone(), q.clone()).prop_map(|(p, q)| add(p, q)),
            2 => p.clone().prop_map(remove),
            2 => (p, q).prop_map(|(p, q)| change(p, q)),
            1 => Just(reset()),
            1 => proptest::option::of(0u128..3).prop_map(assign),
            1 => Just(delete()),
        ]
    }

    proptest! {
        /// Any sequence of commands: the accepted ones' events fold to the state the
        /// decisions saw, every line stays within the spec's bounds, and a deleted cart
        /// stays deleted and empty.
        #[test]
        fn decisions_fold_to_a_consistent_state(commands in proptest::collection::vec(any_command(), 0..60)) {
            let (state, events) = run(&commands);
            let folded: Cart = fold(&events);
            prop_assert_eq!(&folded, &state);
            for q in state.items.values() {
                prop_assert!((MIN_QUANTITY..=MAX_QUANTITY).contains(q));
            }
            if state.deleted {
                prop_assert!(state.items.is_empty());
                prop_assert!(matches!(events.last(), Some(CartEvent::CartDeleted(_))));
            }
            if !events.is_empty() {
                prop_assert!(
                    matches!(events.first(), Some(CartEvent::ProductAdded(_) | CartEvent::CustomerAssigned(_))),
                    "a cart starts with an add or a customer"
                );
            }
        }

        /// Deciding never panics and a rejected command changes nothing.
        #[test]
        fn rejected_commands_emit_nothing(commands in proptest::collection::vec(any_command(), 0..30), last in any_command()) {
            let (state, _) = run(&commands);
            match decide(&state, &last) {
                Ok(events) => prop_assert!(events.len() <= 1),
                Err(e) => prop_assert!(!matches!(e, ServiceError::Internal(_))),
            }
        }
    }
}
