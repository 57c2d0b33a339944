// Starts GraphiQL on Bookbag's `GET /graphql` page (bookbag/graphql_ide.py). React, ReactDOM and GraphiQL
// are the files next to this one; nothing is loaded from another host.
(function () {
  "use strict";

  const EXAMPLE_QUERY = `# Bookbag's GraphQL API.
#
# Every request needs an API key. Open "Headers" below and enter
#   {"Authorization": "Bearer bb_…"}
# GraphiQL keeps the headers in this browser's local storage; subscriptions
# send them in connection_init.
#
# Run with Ctrl-Enter; Ctrl-Space completes.

query Me {
  me {
    role
    merchant { name slug }
  }
}
`;

  // The query (`q`: a `query` parameter would make GET /graphql an API request, not this page) and the
  // variables live in the page's address, so a link shares them. Never the headers: a key in an address
  // ends up in histories and logs.
  const parameters = {};
  for (const entry of window.location.search.slice(1).split("&")) {
    const eq = entry.indexOf("=");
    if (eq >= 0) {
      parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(entry.slice(eq + 1));
    }
  }

  function updateURL(data) {
    Object.assign(parameters, data);
    const search = Object.keys(parameters)
      .filter((key) => key !== "headers" && Boolean(parameters[key]))
      .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
      .join("&");
    history.replaceState(null, "", "?" + search);
  }

  const fetchURL = window.location.href.split("?")[0].split("#")[0];
  const subscriptionURL = new URL(fetchURL);
  subscriptionURL.protocol = subscriptionURL.protocol === "https:" ? "wss:" : "ws:";

  const fetcher = GraphiQL.createFetcher({ url: fetchURL, subscriptionUrl: subscriptionURL.toString() });

  function BookbagGraphiQL() {
    const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
    const [variables, setVariables] = React.useState(parameters.variables);
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      query: query,
      variables: variables,
      onEditQuery: (value) => {
        setQuery(value);
        updateURL({ q: value });
      },
      onEditVariables: (value) => {
        setVariables(value);
        updateURL({ variables: value });
      },
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(BookbagGraphiQL));
})();
