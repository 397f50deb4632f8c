//! The resolvers, keyed by `"Type.field"`: every Query and Mutation field and every
//! relation field of the generated SDL. Plain fields need none: they are read from the
//! parent's value (see `sdl::plain_field`). `sdl::Sdl::register` fails when a root or
//! relation field has no resolver here, or when a key here names no field.
//!
//! Gets of an unknown id (`getProduct`, `getOrder`, `viewCart`, `viewProfile`) return
//! null with a `NOT_FOUND` error. Relation fields (`CartItem.product`, `Order.cart`, …)
//! return null without an error when the referenced item no longer exists, as their
//! descriptions say.

use std::collections::BTreeMap;

use async_graphql::dynamic::{FieldFuture, FieldValue, ResolverContext};
use async_graphql::{Context, Value};
use shop_cart::pb as cart;
use shop_order::pb as order;
use shop_product::pb as product;
use shop_user::pb as user;
use tonic::Code;

use crate::convert::{self, Args};
use crate::errors::{self, NOT_FOUND};
use crate::upstream::{RequestScope, Upstreams, grpc};

/// A field resolver.
pub type Resolve = for<'a> fn(ResolverContext<'a>) -> FieldFuture<'a>;

type Out<'a> = async_graphql::Result<Option<FieldValue<'a>>>;

/// Every resolver, by `"Type.field"`.
pub fn registry() -> BTreeMap<&'static str, Resolve> {
    let entries: [(&'static str, Resolve); 22] = [
        // Query
        ("Query.viewProducts", view_products),
        ("Query.getProduct", get_product),
        ("Query.viewCart", view_cart),
        ("Query.viewOrders", view_orders),
        ("Query.getOrder", get_order),
        ("Query.viewProfile", view_profile),
        // Mutation
        ("Mutation.addProduct", add_product),
        ("Mutation.removeProduct", remove_product),
        ("Mutation.changeProductQuantity", change_product_quantity),
        ("Mutation.resetCart", reset_cart),
        ("Mutation.checkout", checkout),
        ("Mutation.registerCustomer", register_customer),
        ("Mutation.deleteAccount", delete_account),
        ("Mutation.createProduct", create_product),
        ("Mutation.updateProduct", update_product),
        ("Mutation.deleteProduct", delete_product),
        // Relations
        ("Customer.orders", customer_orders),
        ("Cart.customer", parent_customer),
        ("Order.customer", parent_customer),
        ("Order.cart", order_cart),
        ("CartItem.product", line_product),
        ("OrderDetail.product", line_product),
    ];
    entries.into_iter().collect()
}

fn value<'a>(v: Value) -> Out<'a> {
    Ok(Some(FieldValue::value(v)))
}

fn upstreams<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Upstreams> {
    ctx.ctx
        .data::<Upstreams>()
        .map_err(|e| errors::internal(e.message))
}

fn ok<T>(service: &str, r: Result<tonic::Response<T>, tonic::Status>) -> async_graphql::Result<T> {
    r.map(tonic::Response::into_inner)
        .map_err(|s| errors::from_status(service, &s))
}

/// NOT_FOUND as `None`, for relations whose target may be gone.
fn ok_or_gone<T>(
    service: &str,
    r: Result<tonic::Response<T>, tonic::Status>,
) -> async_graphql::Result<Option<T>> {
    match r {
        Err(s) if s.code() == Code::NotFound => Ok(None),
        r => ok(service, r).map(Some),
    }
}

fn not_found(kind: &str, id: &str) -> async_graphql::Error {
    errors::coded(NOT_FOUND, format!("{kind} {id} not found"))
}

// ------------------------------------------------------------------- Query

fn view_products(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::of(&ctx.args);
        let (page_size, page_token) = a.page();
        a.finish()?;
        let req = product::ViewProductsRequest {
            page_size,
            page_token,
        };
        let mut client = upstreams(&ctx)?.product.clone();
        let r = ok("product", client.view_products(grpc(&ctx, req)).await)?;
        value(convert::product_connection(r)?)
    })
}

fn get_product(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::of(&ctx.args);
        let id = a.id("id");
        a.finish()?;
        let req = product::GetProductRequest { id: id.clone() };
        let mut client = upstreams(&ctx)?.product.clone();
        let r = ok("product", client.get_product(grpc(&ctx, req)).await)?;
        match r.product {
            Some(p) => value(convert::product(&p)?),
            None => Err(not_found("product", &id)),
        }
    })
}

fn view_cart(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::of(&ctx.args);
        let cart_id = a.id("cartId");
        a.finish()?;
        let req = cart::ViewCartRequest {
            cart_id: cart_id.clone(),
        };
        let mut client = upstreams(&ctx)?.cart_query.clone();
        let r = ok("cart", client.view_cart(grpc(&ctx, req)).await)?;
        match r.cart {
            Some(c) => value(convert::cart(&c, r.version)?),
            None => Err(not_found("cart", &cart_id)),
        }
    })
}

fn view_orders(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::of(&ctx.args);
        let customer_id = a.opt_id("customerId");
        let (page_size, page_token) = a.page();
        a.finish()?;
        let req = order::ViewOrdersRequest {
            customer_id,
            page_size,
            page_token,
        };
        let mut client = upstreams(&ctx)?.order.clone();
        let r = ok("order", client.view_orders(grpc(&ctx, req)).await)?;
        value(convert::order_connection(r)?)
    })
}

fn get_order(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::of(&ctx.args);
        let id = a.id("id");
        a.finish()?;
        let req = order::GetOrderRequest { id: id.clone() };
        let mut client = upstreams(&ctx)?.order.clone();
        let r = ok("order", client.get_order(grpc(&ctx, req)).await)?;
        match r.order {
            Some(o) => value(convert::order(&o)?),
            None => Err(not_found("order", &id)),
        }
    })
}

fn view_profile(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::of(&ctx.args);
        let customer_id = a.id("customerId");
        a.finish()?;
        let req = user::ViewProfileRequest {
            customer_id: customer_id.clone(),
        };
        let mut client = upstreams(&ctx)?.user.clone();
        let r = ok("user", client.view_profile(grpc(&ctx, req)).await)?;
        match r.customer {
            Some(c) => value(convert::customer(&c, r.version)?),
            None => Err(not_found("customer", &customer_id)),
        }
    })
}

// ------------------------------------------------------------------- Mutation: cart

fn add_product(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = cart::AddProductRequest {
            cart_id: a.id("cartId"),
            product_id: a.id("productId"),
            quantity: a.int("quantity"),
            expected_version: a.opt_i64("expectedVersion"),
        };
        a.finish()?;
        let mut client = upstreams(&ctx)?.cart_command.clone();
        let r = ok("cart", client.add_product(grpc(&ctx, req)).await)?;
        value(convert::command_payload("cartId", &r.cart_id, r.version)?)
    })
}

fn remove_product(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = cart::RemoveProductRequest {
            cart_id: a.id("cartId"),
            product_id: a.id("productId"),
            expected_version: a.opt_i64("expectedVersion"),
        };
        a.finish()?;
        let mut client = upstreams(&ctx)?.cart_command.clone();
        let r = ok("cart", client.remove_product(grpc(&ctx, req)).await)?;
        value(convert::command_payload("cartId", &r.cart_id, r.version)?)
    })
}

fn change_product_quantity(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = cart::ChangeProductQuantityRequest {
            cart_id: a.id("cartId"),
            product_id: a.id("productId"),
            quantity: a.int("quantity"),
            expected_version: a.opt_i64("expectedVersion"),
        };
        a.finish()?;
        let mut client = upstreams(&ctx)?.cart_command.clone();
        let r = ok(
            "cart",
            client.change_product_quantity(grpc(&ctx, req)).await,
        )?;
        value(convert::command_payload("cartId", &r.cart_id, r.version)?)
    })
}

fn reset_cart(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = cart::ResetCartRequest {
            cart_id: a.id("cartId"),
            expected_version: a.opt_i64("expectedVersion"),
        };
        a.finish()?;
        let mut client = upstreams(&ctx)?.cart_command.clone();
        let r = ok("cart", client.reset_cart(grpc(&ctx, req)).await)?;
        value(convert::command_payload("cartId", &r.cart_id, r.version)?)
    })
}

// ------------------------------------------------------------------- Mutation: order, user

fn checkout(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = order::CheckoutRequest {
            cart_id: a.id("cartId"),
            customer_id: a.id("customerId"),
        };
        a.finish()?;
        let mut client = upstreams(&ctx)?.order.clone();
        let r = ok("order", client.checkout(grpc(&ctx, req)).await)?;
        value(convert::some_order(r.order)?)
    })
}

fn register_customer(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = user::RegisterCustomerRequest {
            email: a.string("email"),
            name: a.string("name"),
            expected_version: a.opt_i64("expectedVersion"),
        };
        a.finish()?;
        let mut client = upstreams(&ctx)?.user.clone();
        let r = ok("user", client.register_customer(grpc(&ctx, req)).await)?;
        value(convert::command_payload(
            "customerId",
            &r.customer_id,
            r.version,
        )?)
    })
}

fn delete_account(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = user::DeleteAccountRequest {
            customer_id: a.id("customerId"),
            expected_version: a.opt_i64("expectedVersion"),
        };
        a.finish()?;
        let mut client = upstreams(&ctx)?.user.clone();
        let r = ok("user", client.delete_account(grpc(&ctx, req)).await)?;
        value(convert::command_payload(
            "customerId",
            &r.customer_id,
            r.version,
        )?)
    })
}

// ------------------------------------------------------------------- Mutation: product

fn create_product(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = product::CreateProductRequest {
            name: a.string("name"),
            description: a.opt_string("description"),
            price: a.money("price"),
        };
        a.finish()?;
        let mut client = upstreams(&ctx)?.product.clone();
        let r = ok("product", client.create_product(grpc(&ctx, req)).await)?;
        value(convert::some_product(r.product)?)
    })
}

fn update_product(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let req = product::UpdateProductRequest {
            id: a.id("id"),
            name: a.string("name"),
            description: a.opt_string("description"),
            price: a.money("price"),
        };
        a.finish()?;
        let mut client = upstreams(&ctx)?.product.clone();
        let r = ok("product", client.update_product(grpc(&ctx, req)).await)?;
        value(convert::some_product(r.product)?)
    })
}

fn delete_product(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let mut a = Args::input(&ctx.args)?;
        let id = a.id("id");
        a.finish()?;
        let req = product::DeleteProductRequest { id: id.clone() };
        let mut client = upstreams(&ctx)?.product.clone();
        ok("product", client.delete_product(grpc(&ctx, req)).await)?;
        value(convert::delete_payload(&id))
    })
}

// ------------------------------------------------------------------- relations

/// `Customer.orders(first, after)`: `viewOrders(customerId: <this id>)`.
fn customer_orders(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    FieldFuture::new(async move {
        let customer_id = convert::parent_str(ctx.parent_value, "id");
        let mut a = Args::of(&ctx.args);
        let (page_size, page_token) = a.page();
        a.finish()?;
        let req = order::ViewOrdersRequest {
            customer_id,
            page_size,
            page_token,
        };
        let mut client = upstreams(&ctx)?.order.clone();
        let r = ok("order", client.view_orders(grpc(&ctx, req)).await)?;
        value(convert::order_connection(r)?)
    })
}

/// `Cart.customer` / `Order.customer`: `viewProfile(customerId: customerId)`.
fn parent_customer(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    let Some(customer_id) = convert::parent_str(ctx.parent_value, "customerId") else {
        return FieldFuture::Value(None);
    };
    FieldFuture::new(async move {
        let req = user::ViewProfileRequest { customer_id };
        let mut client = upstreams(&ctx)?.user.clone();
        let r = ok_or_gone("user", client.view_profile(grpc(&ctx, req)).await)?;
        match r {
            Some(user::ViewProfileResponse {
                customer: Some(c),
                version,
            }) => value(convert::customer(&c, version)?),
            _ => Ok(None),
        }
    })
}

/// `Order.cart`: `viewCart(cartId: cartId)`.
fn order_cart(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    let Some(cart_id) = convert::parent_str(ctx.parent_value, "cartId") else {
        return FieldFuture::Value(None);
    };
    FieldFuture::new(async move {
        let req = cart::ViewCartRequest { cart_id };
        let mut client = upstreams(&ctx)?.cart_query.clone();
        let r = ok_or_gone("cart", client.view_cart(grpc(&ctx, req)).await)?;
        match r {
            Some(cart::ViewCartResponse {
                cart: Some(c),
                version,
            }) => value(convert::cart(&c, version)?),
            _ => Ok(None),
        }
    })
}

/// `CartItem.product` / `OrderDetail.product`: `getProduct(id: productId)`, batched
/// per request by the product loader.
fn line_product(ctx: ResolverContext<'_>) -> FieldFuture<'_> {
    let Some(product_id) = convert::parent_str(ctx.parent_value, "productId") else {
        return FieldFuture::Value(None);
    };
    FieldFuture::new(async move {
        match product_by_id(ctx.ctx, product_id).await? {
            Some(p) => value(p),
            None => Ok(None),
        }
    })
}

async fn product_by_id(ctx: &Context<'_>, id: String) -> async_graphql::Result<Option<Value>> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Ok(None);
    }
    let found = match ctx.data_opt::<RequestScope>() {
        Some(scope) => match scope.products.load_one(id).await {
            Ok(found) => found.transpose()?,
            Err(never) => match never {},
        },
        // Outside a prepared request (`Bff::execute` adds the scope): no batching.
        None => {
            let mut client = ctx
                .data::<Upstreams>()
                .map_err(|e| errors::internal(e.message))?
                .product
                .clone();
            let req = product::GetProductRequest { id };
            ok_or_gone("product", client.get_product(grpc(ctx, req)).await)?.and_then(|r| r.product)
        }
    };
    found.as_ref().map(convert::product).transpose()
}
