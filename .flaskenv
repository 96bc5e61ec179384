FLASK_APP=ops_ui
