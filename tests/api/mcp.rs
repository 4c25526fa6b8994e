//! `/mcp`: the task tools, driven by the official MCP client (rmcp) over
//! real HTTP, every effect checked through the HTTP API.

use reqwest::{Method, StatusCode};
use rmcp::{
    RoleClient, ServiceExt as _,
    model::{CallToolRequestParams, CallToolResult},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, token};

type Client = RunningService<RoleClient, ()>;

/// An initialized MCP client of `app` calling as the holder of `token`.
async fn connect(app: &TestApp, token: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.base))
        .auth_header(token.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP initialize")
}

/// Calls `name` with `args` (an object); the result, error or not.
async fn call(client: &Client, name: &'static str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args))
        .await
        .unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// A successful call's `structuredContent`, checked to be the same JSON as
/// its text content.
async fn ok(client: &Client, name: &'static str, args: Value) -> Value {
    let result = call(client, name, args).await;
    assert_ne!(result.is_error, Some(true), "{name}: {result:?}");
    let structured = result
        .structured_content
        .clone()
        .expect("structuredContent");
    let text = result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), structured);
    structured
}

/// A failed call's message (an `isError` result, not a protocol error).
async fn tool_error(client: &Client, name: &'static str, args: Value) -> String {
    let result = call(client, name, args).await;
    assert_eq!(result.is_error, Some(true), "{name}: {result:?}");
    result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone()
}

/// The task as the HTTP API shows it to the holder of `token`.
async fn http_task(app: &TestApp, token: &str, id: i64) -> (StatusCode, Value) {
    let response = app.get_task(token, id).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn initialize_and_list_tools_with_schemas(app: TestApp) {
    let client = connect(&app, &token("alice")).await;
    let server = client.peer_info().expect("server info");
    let name = server.server_info.as_ref().map(|s| s.name.as_str());
    assert_eq!(name, Some("tasks-api"));
    let tools = client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "add_task",
            "complete_task",
            "delete_task",
            "list_tasks",
            "update_task"
        ]
    );
    for tool in &tools {
        assert!(tool.description.as_ref().is_some_and(|d| d.len() > 40));
        assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
        assert!(tool.input_schema["properties"].get("user_id").is_some());
        let output = tool.output_schema.as_ref().expect("output schema");
        assert_eq!(output["type"], "object", "{}", tool.name);
    }
    let schema = |name: &str| {
        let tool = tools.iter().find(|t| t.name == name).unwrap();
        Value::Object((*tool.input_schema).clone())
    };
    // The HTTP API's rules, not a second copy of them.
    let add = schema("add_task");
    assert_eq!(add["required"], json!(["title"]));
    assert_eq!(add["properties"]["title"]["maxLength"], 200);
    assert_eq!(add["properties"]["tags"]["maxItems"], 20);
    assert_eq!(
        add["properties"]["priority"]["enum"],
        json!(["low", "medium", "high"])
    );
    assert_eq!(add["properties"]["due_date"]["format"], "date-time");
    assert_eq!(schema("update_task")["required"], json!(["task_id"]));
    assert_eq!(schema("complete_task")["required"], json!(["task_id"]));
    assert_eq!(schema("list_tasks")["properties"]["limit"]["maximum"], 100);
    let hints = |name: &str| {
        let tool = tools.iter().find(|t| t.name == name).unwrap();
        tool.annotations.clone().expect("annotations")
    };
    assert_eq!(hints("list_tasks").read_only_hint, Some(true));
    assert_eq!(hints("delete_task").destructive_hint, Some(true));
    assert_eq!(hints("complete_task").idempotent_hint, Some(true));
    client.cancel().await.ok();
}

async fn each_tool_does_what_its_route_does(app: TestApp) {
    let alice = token("alice");
    let client = connect(&app, &alice).await;

    let added = ok(
        &client,
        "add_task",
        json!({
            "title": "  Buy milk ",
            "priority": "high",
            "tags": ["home", "home", "errand"],
            "due_date": "2026-12-01T10:00:00+01:00",
        }),
    )
    .await;
    assert_eq!(added["status"], "created");
    assert_eq!(added["title"], "Buy milk");
    let id = added["task_id"].as_i64().expect("task_id");
    let (status, task) = http_task(&app, &alice, id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(added["task"], task);
    assert_eq!(task["priority"], "high");
    assert_eq!(task["tags"], json!(["home", "errand"]));
    assert_eq!(task["due_date"], "2026-12-01T09:00:00Z");
    assert_eq!(task["user_id"], "alice");

    let other = app.new_task(&alice, json!({"title": "Write report"})).await;
    let listed = ok(&client, "list_tasks", json!({})).await;
    let ids: Vec<i64> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [other["id"].as_i64().unwrap(), id], "newest first");
    assert_eq!(listed["has_more"], false);
    let listed = ok(&client, "list_tasks", json!({"tag": "errand", "limit": 5})).await;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    let listed = ok(&client, "list_tasks", json!({"q": "REPORT", "limit": 1})).await;
    assert_eq!(listed["tasks"][0]["title"], "Write report");
    assert_eq!(listed["has_more"], false);
    assert_eq!(
        ok(&client, "list_tasks", json!({"limit": 1})).await["has_more"],
        true
    );

    let completed = ok(&client, "complete_task", json!({"task_id": id})).await;
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["task_id"], id);
    let (_, task) = http_task(&app, &alice, id).await;
    assert_eq!(task["completed"], true);
    // Completing again keeps it done (no toggle back).
    ok(&client, "complete_task", json!({"task_id": id})).await;
    assert_eq!(http_task(&app, &alice, id).await.1["completed"], true);
    let pending = ok(&client, "list_tasks", json!({"status": "pending"})).await;
    assert_eq!(pending["tasks"].as_array().unwrap().len(), 1);

    let updated = ok(
        &client,
        "update_task",
        json!({"task_id": id, "title": "Buy oat milk", "completed": false, "due_date": null}),
    )
    .await;
    assert_eq!(updated["status"], "updated");
    assert_eq!(updated["title"], "Buy oat milk");
    let (_, task) = http_task(&app, &alice, id).await;
    assert_eq!(task["title"], "Buy oat milk");
    assert_eq!(task["completed"], false);
    assert_eq!(task["due_date"], Value::Null);
    assert_eq!(task["priority"], "high", "fields not given are kept");
    assert_eq!(updated["task"], task);

    let deleted = ok(&client, "delete_task", json!({"task_id": id})).await;
    assert_eq!(deleted["status"], "deleted");
    assert_eq!(deleted["title"], "Buy oat milk");
    assert_eq!(http_task(&app, &alice, id).await.0, StatusCode::NOT_FOUND);
    client.cancel().await.ok();
}

async fn validation_errors_are_tool_errors_and_store_nothing(app: TestApp) {
    let alice = token("alice");
    let client = connect(&app, &alice).await;
    let body = json!({"title": " ", "priority": "urgent", "due_date": "tomorrow"});
    let message = tool_error(&client, "add_task", body.clone()).await;
    // The very `detail` the HTTP API gives for the same body.
    let problem = assert_problem(
        app.create_task(&alice, body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(message, problem["detail"].as_str().unwrap());
    assert!(message.contains("title") && message.contains("priority"));
    assert_eq!(app.list_tasks(&alice, "").await["items"], json!([]));

    let task = app.new_task(&alice, json!({"title": "keep"})).await;
    let id = task["id"].as_i64().unwrap();
    let patch = json!({"tags": ["x".repeat(51)]});
    let message = tool_error(
        &client,
        "update_task",
        json!({"task_id": id, "tags": patch["tags"]}),
    )
    .await;
    let problem = assert_problem(
        app.patch_task(&alice, id, patch).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(message, problem["detail"].as_str().unwrap());
    // Arguments the schemas do not name are refused, as unknown body fields.
    for (name, args, field) in [
        ("add_task", json!({"title": "t", "task_id": 3}), "task_id"),
        (
            "add_task",
            json!({"title": "t", "completed": true}),
            "completed",
        ),
        ("update_task", json!({"task_id": id, "owner": "x"}), "owner"),
        ("list_tasks", json!({"sort": "title"}), "sort"),
    ] {
        let message = tool_error(&client, name, args).await;
        assert!(message.starts_with(field), "{name}: {message}");
    }
    let message = tool_error(&client, "list_tasks", json!({"status": "done"})).await;
    assert!(message.starts_with("status "), "{message}");
    let message = tool_error(&client, "complete_task", json!({"task_id": "seven"})).await;
    assert!(message.starts_with("task_id "), "{message}");
    assert_eq!(http_task(&app, &alice, id).await.1, task, "unchanged");
    client.cancel().await.ok();
}

async fn another_users_task_is_untouched(app: TestApp) {
    let alice = token("alice");
    let task = app.new_task(&alice, json!({"title": "alice's"})).await;
    let id = task["id"].as_i64().unwrap();
    let not_found = assert_problem(app.get_task(&token("bob"), id).await, StatusCode::NOT_FOUND)
        .await["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = connect(&app, &token("bob")).await;
    for (name, args) in [
        ("complete_task", json!({"task_id": id})),
        ("update_task", json!({"task_id": id, "title": "bob's now"})),
        ("update_task", json!({"task_id": id, "title": ""})),
        ("delete_task", json!({"task_id": id})),
    ] {
        assert_eq!(tool_error(&bob, name, args).await, not_found, "{name}");
    }
    let listed = ok(&bob, "list_tasks", json!({})).await;
    assert_eq!(listed["tasks"], json!([]));
    assert_eq!(http_task(&app, &alice, id).await.1, task);
    bob.cancel().await.ok();
}

async fn a_foreign_user_id_is_refused(app: TestApp) {
    let alice = token("alice");
    let task = app.new_task(&alice, json!({"title": "mine"})).await;
    let id = task["id"].as_i64().unwrap();
    let client = connect(&app, &alice).await;
    for (name, args) in [
        ("add_task", json!({"title": "x", "user_id": "bob"})),
        ("list_tasks", json!({"user_id": "bob"})),
        ("complete_task", json!({"task_id": id, "user_id": "bob"})),
        (
            "update_task",
            json!({"task_id": id, "title": "y", "user_id": "bob"}),
        ),
        ("delete_task", json!({"task_id": id, "user_id": "bob"})),
    ] {
        let message = tool_error(&client, name, args).await;
        assert!(message.contains("user_id"), "{name}: {message}");
    }
    assert_eq!(app.list_tasks(&alice, "").await["items"], json!([task]));
    // The caller's own id is accepted.
    let added = ok(
        &client,
        "add_task",
        json!({"title": "x", "user_id": "alice"}),
    )
    .await;
    assert_eq!(added["task"]["user_id"], "alice");
    client.cancel().await.ok();
}

/// A JSON-RPC request as an agent framework posts it, without a session.
fn rpc(app: &TestApp, token: Option<&str>, body: Value) -> reqwest::RequestBuilder {
    app.req(Method::POST, "/mcp", token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body)
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
}

async fn no_valid_token_is_401_before_mcp(app: TestApp) {
    let response = rpc(&app, None, initialize()).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
    let response = rpc(&app, Some("not-a-jwt"), initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
    // And the real client cannot get past it.
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.base));
    let refused = ().serve(StreamableHttpClientTransport::from_config(config)).await;
    assert!(refused.is_err());
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"route="/mcp",status="401""#),
        "counted under /mcp"
    );
}

/// `tools/list` with a chosen `Host` and `Origin`: the status.
async fn from(app: &TestApp, host: &str, origin: Option<&str>) -> StatusCode {
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let mut request = rpc(app, Some(&token("alice")), list).header("host", host);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap().status()
}

async fn host_and_origin_are_checked(app: TestApp) {
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let local = format!("127.0.0.1:{port}");
    assert_eq!(from(&app, &local, None).await, StatusCode::OK);
    assert_eq!(from(&app, "localhost", None).await, StatusCode::OK);
    // DNS rebinding: a page of another site reaching a local server.
    assert_eq!(
        from(&app, "evil.example", None).await,
        StatusCode::FORBIDDEN
    );
    // Browsers only from the front ends CORS allows.
    let front_end = Some("http://localhost:3000");
    assert_eq!(from(&app, &local, front_end).await, StatusCode::OK);
    let stranger = Some("https://evil.example");
    assert_eq!(from(&app, &local, stranger).await, StatusCode::FORBIDDEN);

    let public = TestApp::with_env(app.backend, &[("MCP_ALLOWED_HOSTS", "tasks.example.com")])
        .await
        .expect("app");
    assert_eq!(
        from(&public, "tasks.example.com", None).await,
        StatusCode::OK
    );
    assert_eq!(from(&public, &local, None).await, StatusCode::FORBIDDEN);
    let any = TestApp::with_env(app.backend, &[("MCP_ALLOWED_HOSTS", "*")])
        .await
        .expect("app");
    assert_eq!(from(&any, "evil.example", None).await, StatusCode::OK);
}

async fn the_users_rate_limit_applies(app: TestApp) {
    let limited = TestApp::with_env(
        app.backend,
        &[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "2")],
    )
    .await
    .expect("app");
    let alice = token("alice");
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "list_tasks", "arguments": {}}});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = rpc(&limited, Some(&alice), list.clone())
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            assert_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

async fn any_instance_answers_without_a_session(app: TestApp) {
    let alice = token("alice");
    let response = rpc(&app, Some(&alice), initialize()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("mcp-session-id").is_none(),
        "stateless: no session to pin a client to one instance"
    );
    let mut second = TestApp::start(app.backend, &app.database_url, &[]).await;
    let add = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "add_task", "arguments": {"title": "from the second instance"}}});
    let response = rpc(&second, Some(&alice), add).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let result = &answer["result"];
    assert_eq!(result["isError"], false, "{answer}");
    let id = result["structuredContent"]["task_id"].as_i64().unwrap();
    // The first instance sees it, through the API and through its tools.
    assert_eq!(http_task(&app, &alice, id).await.0, StatusCode::OK);
    let client = connect(&app, &alice).await;
    let listed = ok(&client, "list_tasks", json!({})).await;
    assert_eq!(listed["tasks"][0]["id"], id);
    client.cancel().await.ok();
    second.stop().await;
}

/// A tool call is the same write as its route: it shows in the change feed
/// and on the user's event stream.
async fn tool_calls_appear_in_the_feed_and_the_event_stream(app: TestApp) {
    let alice = token("alice");
    let mut events = crate::events::Events::open(&app, &alice, None).await;
    let mut since = crate::changes::sync(&app, &alice, "").await["next_since"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = connect(&app, &alice).await;
    let id = ok(&client, "add_task", json!({"title": "by an agent"})).await["task_id"]
        .as_i64()
        .unwrap();
    let steps: [(&'static str, Value, &str, Value); 4] = [
        ("add_task", Value::Null, "upsert", json!(1)),
        ("complete_task", json!({"task_id": id}), "upsert", json!(2)),
        (
            "update_task",
            json!({"task_id": id, "title": "renamed"}),
            "upsert",
            json!(3),
        ),
        ("delete_task", json!({"task_id": id}), "delete", Value::Null),
    ];
    for (tool, args, op, version) in steps {
        if !args.is_null() {
            ok(&client, tool, args).await;
        }
        let page = crate::changes::sync(&app, &alice, &format!("since={since}")).await;
        let changes = page["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{tool}: {changes:?}");
        assert_eq!(changes[0]["op"], op, "{tool}");
        assert_eq!(changes[0]["task"]["version"].clone(), version, "{tool}");
        since = page["next_since"].as_str().unwrap().to_owned();
        let event = events.next().await;
        assert_eq!(event.event, op, "{tool}");
        assert_eq!(event.data, changes[0], "{tool}");
    }
    client.cancel().await.ok();
}

/// The same `tools/call` answered by the direct path (src/api/mcp/direct.rs,
/// taken with a plain `Accept`) and by rmcp (an `Accept` with a weight,
/// which the direct path leaves to rmcp): the same status, type and JSON,
/// for answers, `isError` results, request ids of both kinds.
async fn the_direct_path_answers_as_rmcp_does(app: TestApp) {
    let alice = token("alice");
    app.new_task(&alice, json!({"title": "first", "tags": ["a", "b"]}))
        .await;
    app.new_task(
        &alice,
        json!({"title": "second \"quoted\" \u{e9}", "description": "line\nbreak \\ <&>"}),
    )
    .await;
    let call = |id: Value, name: &str, arguments: Option<Value>| {
        let mut params = json!({"name": name});
        if let Some(arguments) = arguments {
            params["arguments"] = arguments;
        }
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
    };
    let calls = [
        call(json!(1), "list_tasks", Some(json!({}))),
        call(
            json!("s-2"),
            "list_tasks",
            Some(json!({"status": "pending", "limit": 1})),
        ),
        call(json!(3), "list_tasks", None),
        call(json!(4), "list_tasks", Some(json!({"bogus": 1}))),
        call(json!(5), "list_tasks", Some(json!({"user_id": "bob"}))),
        call(json!(6), "add_task", Some(json!({"title": " "}))),
        call(json!(7), "complete_task", Some(json!({"task_id": 999_999}))),
        call(json!(8), "delete_task", Some(json!({"task_id": "x"}))),
    ];
    for body in calls {
        let (mut answers, mut raws) = (Vec::new(), Vec::new());
        for accept in [
            "application/json, text/event-stream",
            "application/json;q=1, text/event-stream",
        ] {
            let response = app
                .req(Method::POST, "/mcp", Some(&alice))
                .header("accept", accept)
                .header("mcp-protocol-version", "2025-06-18")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let kind = response.headers()["content-type"].clone();
            let raw = response.text().await.unwrap();
            let answer: Value = serde_json::from_str(&raw).unwrap();
            answers.push((status, kind, answer));
            raws.push(raw);
        }
        assert_eq!(answers[0], answers[1], "{body}");
        // Each path was taken: rmcp's `Value` sorts the keys of
        // `structuredContent`, the direct path keeps the text's order.
        if body["params"]["name"] == "list_tasks" && answers[0].2["result"]["isError"] == false {
            assert!(
                raws[0].contains(r#""structuredContent":{"tasks""#),
                "{}",
                raws[0]
            );
            assert!(
                raws[1].contains(r#""structuredContent":{"has_more""#),
                "{}",
                raws[1]
            );
        }
        let result = &answers[0].2["result"];
        if result["isError"] == false {
            let text = result["content"][0]["text"].as_str().unwrap();
            assert_eq!(
                serde_json::from_str::<Value>(text).unwrap(),
                result["structuredContent"]
            );
        }
    }
}

crate::both_backends!(
    the_direct_path_answers_as_rmcp_does,
    tool_calls_appear_in_the_feed_and_the_event_stream,
    initialize_and_list_tools_with_schemas,
    each_tool_does_what_its_route_does,
    validation_errors_are_tool_errors_and_store_nothing,
    another_users_task_is_untouched,
    a_foreign_user_id_is_refused,
    no_valid_token_is_401_before_mcp,
    the_users_rate_limit_applies,
    host_and_origin_are_checked,
    any_instance_answers_without_a_session,
);
